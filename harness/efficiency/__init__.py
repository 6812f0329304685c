"""Distance to the limit: what a case's training costs in arithmetic (`flops`), what this machine can
do at most (`peak`), what it drew from the wall (`energy`), and the record's figures from them
(`figures`). Where a step's time goes: `harness.profile`."""
