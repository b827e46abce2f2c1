'use strict'
// Drives the InfluxDB 2.x Node.js client (npm `@influxdata/influxdb-client`) against one API
// endpoint.
//
// Writes the points with the client's write API (`/api/v2/write`, bucket = the database,
// second precision), then reads them back through the 1.x `/query` endpoint with Node's own
// http(s), trusting the same CA. The client's query API speaks Flux to `/api/v2/query`, which
// neither the gateway nor influxd 1.6 serves, so it cannot read. The database must exist. See
// common.js for the command line and the output.

const fs = require('node:fs')
const http = require('node:http')
const https = require('node:https')
const path = require('node:path')
const { InfluxDB, Point, setLogger } = require('@influxdata/influxdb-client')
const common = require('./common')

// GET /query as the 1.x API takes it; the JSON rows, with epoch-second times.
function query(a, q) {
  const url = new URL('/query', a.url)
  url.search = new URLSearchParams({ db: a.db, q, epoch: 's' }).toString()
  const headers = {}
  if (a.username !== undefined) headers.Authorization = `Token ${a.username}:${a.password}`
  const options = { headers, timeout: 30000 }
  // With `ca`, only that CA is trusted; without it, Node's built-in roots.
  if (a.ca !== undefined) options.ca = a.ca
  return new Promise((resolve, reject) => {
    const req = (a.https ? https : http).get(url, options, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => {
        if (res.statusCode !== 200) {
          return reject(new Error(`query ${q}: HTTP ${res.statusCode}: ${body}`))
        }
        const result = JSON.parse(body).results[0]
        if (result.error) return reject(new Error(`query ${q}: ${result.error}`))
        const rows = []
        for (const series of result.series || []) {
          for (const values of series.values) {
            rows.push(Object.fromEntries(series.columns.map((c, i) => [c, values[i]])))
          }
        }
        resolve(rows)
      })
    })
    req.on('timeout', () => req.destroy(new Error(`query ${q}: timed out`)))
    req.on('error', reject)
  })
}

async function main() {
  const a = common.args()
  // The client logs each failure with its stack and headers; the error it rejects with is
  // reported once, on one line, instead.
  setLogger({ error() {}, warn() {} })
  const influx = new InfluxDB({
    url: a.url,
    // InfluxDB 1.8's compatibility token: "user:password", or none without authentication.
    token: a.username === undefined ? undefined : `${a.username}:${a.password}`,
    timeout: 30000,
    // Passed to https.request: with `ca`, only that CA is trusted. Certificates are always
    // verified (rejectUnauthorized is Node's default, and never turned off).
    transportOptions: a.ca === undefined ? {} : { ca: a.ca },
  })
  // One attempt: a failure is the answer under test, not something to retry past; and the
  // client's retry logs would bury the error.
  const writeApi = influx.getWriteApi('-', a.db, 's', { maxRetries: 0 })
  const written = common.points(a.points)
  writeApi.writePoints(
    written.map((p) =>
      new Point(a.measurement)
        .tag('host', p.host)
        .floatField('value', p.value)
        .intField('count', p.count)
        .stringField('label', p.label)
        .booleanField('ok', p.ok)
        .timestamp(p.time),
    ),
  )
  // close() flushes, and rejects if the write failed.
  await writeApi.close()
  const rows = await query(a, `SELECT * FROM "${a.measurement}"`)
  const read = rows.map((r) => common.normalise(r, r.time))
  // The package exports no version, nor its package.json.
  const manifest = path.join(__dirname, 'node_modules/@influxdata/influxdb-client/package.json')
  const version = JSON.parse(fs.readFileSync(manifest, 'utf8')).version
  common.finish(`@influxdata/influxdb-client (Node.js) ${version}`, a.url, written, read)
}

common.run(main)
