'use strict'
// What the Node.js client drivers share: the command line, the points, and how a run ends.
// The same contract as common.py: every driver writes `points(n)` with its client's own write
// API, reads them back, and prints one JSON object on stdout,
//   {"client": "...", "url": "...", "written": [...], "read": [...]}
// each point as {time: <epoch seconds>, host, value, count, label, ok}. Any failure, the
// read-back differing from what was written included, is one line on stderr and exit 1.

const fs = require('node:fs')
const path = require('node:path')
const { parseArgs } = require('node:util')

// Whole seconds, so that every precision a client may write in represents them exactly.
const BASE_TIME = 1700000000

function fail(message) {
  process.stderr.write(`${path.basename(process.argv[1])}: ${message}\n`)
  process.exit(1)
}

const USAGE =
  'usage: --url http(s)://HOST:PORT [--ca CA.pem] --db DB --measurement M [--points N] ' +
  '[--username U --password P]'

function args() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        url: { type: 'string' },
        ca: { type: 'string' },
        db: { type: 'string' },
        measurement: { type: 'string' },
        points: { type: 'string', default: '3' },
        username: { type: 'string' },
        password: { type: 'string' },
      },
    }))
  } catch (e) {
    fail(`${e.message}\n${USAGE}`)
  }
  for (const required of ['url', 'db', 'measurement']) {
    if (values[required] === undefined) fail(`--${required} is required\n${USAGE}`)
  }
  let url
  try {
    url = new URL(values.url)
  } catch (e) {
    fail(`--url: ${e.message}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    fail(`--url must be http://HOST:PORT or https://HOST:PORT, not ${values.url}`)
  }
  if (values.ca !== undefined && url.protocol !== 'https:') fail('--ca is for an https URL')
  if ((values.username === undefined) !== (values.password === undefined)) {
    fail('--username and --password go together')
  }
  return {
    url: values.url,
    parsed: url,
    https: url.protocol === 'https:',
    // The PEM contents: given as `ca`, Node trusts only this CA, not its built-in roots.
    ca: values.ca === undefined ? undefined : fs.readFileSync(values.ca),
    db: values.db,
    measurement: values.measurement,
    points: Number.parseInt(values.points, 10),
    username: values.username,
    password: values.password,
  }
}

function points(n) {
  return Array.from({ length: n }, (_, i) => ({
    time: BASE_TIME + i,
    host: `h${i}`,
    value: i + 0.5,
    count: i,
    label: `point ${i}`,
    ok: i % 2 === 0,
  }))
}

// A row read back, with its time already in epoch seconds, in the shape of `points`.
function normalise(row, time) {
  return {
    time,
    host: row.host,
    value: row.value,
    count: row.count,
    label: row.label,
    ok: row.ok,
  }
}

function finish(client, url, written, read) {
  read.sort((a, b) => a.time - b.time)
  if (JSON.stringify(read) !== JSON.stringify(written)) {
    fail(`read back ${JSON.stringify(read)}, wrote ${JSON.stringify(written)}`)
  }
  process.stdout.write(JSON.stringify({ client, url, written, read }) + '\n')
}

// Runs the async `main`, making any rejection one clear line and exit 1.
function run(main) {
  main().catch((e) => {
    const detail = [e && e.code, e && e.message ? e.message : String(e)]
      .filter(Boolean)
      .join(': ')
    const lines = detail.split('\n').map((l) => l.trim()).filter(Boolean)
    fail(`${(e && e.name) || 'Error'}: ${lines.join('; ')}`)
  })
}

module.exports = { args, points, normalise, finish, fail, run }
