"""Training engines behind one interface (`base.Engine.fit(job) -> EngineOutput`): `support` says
what each can do (torch-free), `registry.get` finds one by name."""
