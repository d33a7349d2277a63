// diff.js: a line diff for the policies view, drawn as unified-diff hunks.
// The diff is a longest common subsequence of the lines, after trimming the
// lines both texts start and end with; policy files are small, and an edit
// touches few lines, so the table stays small too.

import { el } from "./dom.js";

// maxCells bounds the LCS table (changed lines of one text times those of
// the other). Past it the changed middle is shown as removed, then added.
const maxCells = 4_000_000;
const context = 3;

// diffLines returns the edit from a to b (arrays of lines) as a list of
// {op, text, old, new}: op is " " (kept), "-" (removed) or "+" (added); old
// and new are the line's numbers in a and b (0 where it has none).
export function diffLines(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const n = endA - start;
  const m = endB - start;
  const ops = [];
  let oldNo = 0;
  let newNo = 0;
  const keep = (text) => ops.push({ op: " ", text, old: ++oldNo, new: ++newNo });
  const remove = (text) => ops.push({ op: "-", text, old: ++oldNo, new: 0 });
  const add = (text) => ops.push({ op: "+", text, old: 0, new: ++newNo });

  for (let i = 0; i < start; i++) keep(a[i]);
  if (n * m > maxCells) {
    for (let i = start; i < endA; i++) remove(a[i]);
    for (let j = start; j < endB; j++) add(b[j]);
  } else {
    // lcs[i*w + j] is the LCS length of a[start+i..endA) and b[start+j..endB).
    const w = m + 1;
    const lcs = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * w + j] =
          a[start + i] === b[start + j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[start + i] === b[start + j]) {
        keep(a[start + i]);
        i++;
        j++;
      } else if (i < n && (j === m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
        remove(a[start + i]); // removals first, as diff -u prints them
        i++;
      } else {
        add(b[start + j]);
        j++;
      }
    }
  }
  for (let i = endA; i < a.length; i++) keep(a[i]);
  return ops;
}

// hunks groups the changes of ops with up to three kept lines around each,
// as diff -u does.
export function hunks(ops) {
  const out = [];
  let cur = null;
  ops.forEach((o, k) => {
    if (o.op === " ") return;
    const from = Math.max(0, k - context);
    if (cur && from <= cur.to + 1) {
      cur.to = Math.min(ops.length - 1, k + context);
    } else {
      if (cur) out.push(cur);
      cur = { from, to: Math.min(ops.length - 1, k + context) };
    }
  });
  if (cur) out.push(cur);
  return out.map(({ from, to }) => ops.slice(from, to + 1));
}

// counts says how many lines ops adds and removes.
export function counts(ops) {
  let added = 0;
  let removed = 0;
  for (const o of ops) {
    if (o.op === "+") added++;
    if (o.op === "-") removed++;
  }
  return { added, removed };
}

// diffTable draws the hunks of ops as a table: old and new line numbers,
// then the line with its sign.
export function diffTable(name, ops) {
  const table = el("table", null, "diff");
  table.append(el("caption", `Changes to ${name}`, "sr-only"));
  const head = el("thead");
  const hr = el("tr");
  hr.append(el("th", "Old", "num"), el("th", "New", "num"), el("th", "Line"));
  for (const th of hr.children) th.scope = "col";
  head.append(hr);
  const body = el("tbody");
  for (const h of hunks(ops)) {
    const first = h.find((o) => o.old) || { old: 0 };
    const firstNew = h.find((o) => o.new) || { new: 0 };
    const oldLen = h.filter((o) => o.op !== "+").length;
    const newLen = h.filter((o) => o.op !== "-").length;
    const tr = el("tr", null, "hunk");
    const td = el("td", `@@ -${first.old},${oldLen} +${firstNew.new},${newLen} @@`);
    td.colSpan = 3;
    tr.append(td);
    body.append(tr);
    for (const o of h) {
      const row = el("tr", null, o.op === "+" ? "add" : o.op === "-" ? "del" : "");
      row.append(el("td", o.old || "", "num"), el("td", o.new || "", "num"), el("td", o.op + " " + o.text, "line"));
      body.append(row);
    }
  }
  table.append(head, body);
  return table;
}
