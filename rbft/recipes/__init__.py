"""The recipes: what composes the components into runs a person starts (an experiment, a benchmark,
bench, the budget preview, background jobs and their launcher, reports, the sample project, a
Space's GPU window). Nothing under rbft/ outside this folder and the CLI imports it."""
