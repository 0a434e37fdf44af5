"""The Slack edge: slash commands, modals and buttons: parsed, acked, rendered."""
