"""Privacy: protections for what clients send (homomorphic encryption in :mod:`fedloom.privacy.he`)."""
