// revocations.js: the revocations view.

export function enter() {}

export function leave() {}
