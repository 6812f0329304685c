"""Training engines behind one interface (`base.Engine.fit(job) -> EngineOutput`): `registry.get`
finds one by name; what each can do is declared in `harness.capabilities` (torch-free)."""
