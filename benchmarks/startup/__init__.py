"""Start-up time of the ``fedloom`` command against a bare Python interpreter."""
