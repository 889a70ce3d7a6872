"""The toy world: a procedurally rendered world of coloured shapes whose every clip comes with its
event log, and what is built on it.

* `world`: render a clip from a seed, with its event log; the true caption of that log.
* `sight`: per-patch ground truth for the vision tower's pretraining.
* `model`: the toy-world VLM (SmolLM2-135M-Instruct with eyes trained here): build, ship, assemble.
* `testbed`: tasks whose classes are rules over event logs (floor, order).
* `truth`: how true a caption or rationale is against its clip's log.

The method (`rbft`'s training, evaluation, experiments) never imports this package; the model name
`toyworld` resolves through `rbft.names`.
"""
