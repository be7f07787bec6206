"""Generated protobuf and gRPC code for ``fedloom.proto`` (regenerate with ``make proto``)."""
