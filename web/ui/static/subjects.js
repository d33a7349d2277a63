// subjects.js: the subjects view.

export function enter() {}

export function leave() {}
