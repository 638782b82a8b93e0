"""Piper text to speech, shared by the API (streaming ``POST /v1/audio/speech``) and the worker
(the queued ``voice`` model): the voice catalog and cache (:mod:`.voices`), sentence-by-sentence
synthesis with Piper's options (:mod:`.synth`), deterministic noise (:mod:`.noise`) and
streamable encoders (:mod:`.encode`). No torch anywhere here."""
