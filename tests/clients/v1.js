'use strict'
// Drives the InfluxDB 1.x Node.js client (npm `influx`) against one API endpoint.
//
// Creates the database (a state-changing query: it goes through the log), writes the points
// with `writePoints` at millisecond precision, typed by a schema as the client's users do (so
// `count` is an integer), and reads them back with `query`. See common.js for the command line
// and the output.

const Influx = require('influx')
const common = require('./common')

async function main() {
  const a = common.args()
  const influx = new Influx.InfluxDB({
    hosts: [
      {
        host: a.parsed.hostname,
        port: Number(a.parsed.port || 8086),
        protocol: a.https ? 'https' : 'http',
        // Passed to https.request: with `ca`, only that CA is trusted. Certificates are
        // always verified (rejectUnauthorized is Node's default, and never turned off).
        options: a.ca === undefined ? {} : { ca: a.ca },
      },
    ],
    database: a.db,
    username: a.username,
    password: a.password,
    // One attempt: a failure is the answer under test, not something to retry past.
    pool: { maxRetries: 0, requestTimeout: 30000 },
    schema: [
      {
        measurement: a.measurement,
        fields: {
          value: Influx.FieldType.FLOAT,
          count: Influx.FieldType.INTEGER,
          label: Influx.FieldType.STRING,
          ok: Influx.FieldType.BOOLEAN,
        },
        tags: ['host'],
      },
    ],
  })
  await influx.createDatabase(a.db)
  const written = common.points(a.points)
  await influx.writePoints(
    written.map((p) => ({
      measurement: a.measurement,
      tags: { host: p.host },
      fields: { value: p.value, count: p.count, label: p.label, ok: p.ok },
      timestamp: new Date(p.time * 1000),
    })),
    { precision: 'ms' },
  )
  const rows = await influx.query(`SELECT * FROM "${a.measurement}"`, { precision: 's' })
  const read = rows.map((r) => common.normalise(r, Math.round(r.time.getTime() / 1000)))
  const version = require('influx/package.json').version
  common.finish(`influx (Node.js) ${version}`, a.url, written, read)
}

common.run(main)
