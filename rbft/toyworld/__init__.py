"""The toy world: a procedurally rendered world of coloured shapes whose every clip comes with its
event log, and what is built on it.

* `world`: render a clip from a seed, with its event log; the true caption of that log.
* `sight`, `motion`: per-patch and per-image-token truth, the build's training targets.
* `base`: the toy-world VLM's base (SmolLM2-135M-Instruct from `weights`, a fresh vision tower).
* `build`: the build that trains its eyes; `evaluation`: captions against the logs;
  `shipped`: the trained parts in assets/toyworld, assembled into the `toyworld` model.
* `testbed`: tasks whose classes are rules over event logs (floor, order); `oracle`: rationales of
  known truth; `truth`: how true a caption or rationale is against its clip's log.

The method (`rbft`'s training, evaluation, experiments) never imports this package; the model name
`toyworld` resolves through `rbft.names`.
"""
