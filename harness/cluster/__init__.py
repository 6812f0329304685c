"""Ray for the commands that spread work over machines (the nightly, bisect): joining a cluster or
starting one here (`session`), what a benchmark case asks of it (`plan`), and a real multi-node
cluster on loopback for tests and measurements (`loopback`)."""
