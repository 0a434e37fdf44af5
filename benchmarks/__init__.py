"""Benchmarks that print figures: ack latency and the DNS sweep's throughput.

Each module runs from the repository root with ``python -m benchmarks.<name>``,
starts everything it needs on 127.0.0.1 and exits 0 whether or not a target is met.
"""
