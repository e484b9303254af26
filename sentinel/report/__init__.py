"""The paperwork sentinel writes from the live config: the security-review pack
(`sentinel report security`, security.py) and the recovery runbook (`sentinel report
runbook`, runbook.py). Each generated report is recorded (record.py) with the config's
fingerprint (fingerprint.py), so status can say when the printed copy went stale."""
