"""The `soundbox` command: starts the API, generation workers and webhook workers; sits above api/, worker/ and shared/."""
