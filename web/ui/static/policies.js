// policies.js: the policies view.

export function enter() {}

export function leave() {}
