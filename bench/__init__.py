"""The appliance's benchmark: `python -m bench` (see docs/benchmark.md).

Not part of the test suite. One run builds fresh SoftHSM tokens in a temporary directory, starts
the emulator and the service on 127.0.0.1, and measures the raw floor, registrations through
the service, throughput, growth with fleet size and an in-process reference.
"""
