'use strict';
// require('../mysql') of an original plugin: a mysql2 connection pool (callback API, as the original's
// "mysql" pool) on the IOTDB: mysql.query(sql, [values], callback), mysql.getConnection(callback) then
// connection.query(...) and connection.release(), mysql.escape(value), mysql.promise() for async/await.
// An idle connection never keeps the plugin's process alive; the runner closes the pool at the end.
const mysql = require('mysql2');

const env = process.env;
const CLOSE = Symbol.for('meccano.close');

if (!env.MYSQL_HOST && env.MECCANO_IOTDB_SQLITE) {
  // the embedded demo's IOTDB is SQLite: there is no MySQL to give the plugin
  const refuse = () => {
    throw new Error("require('../mysql'): the IOTDB here is the demo's SQLite file (MECCANO_IOTDB_SQLITE), not "
                    + 'MySQL/MariaDB; run this plugin against a MySQL IOTDB');
  };
  module.exports = { query: refuse, execute: refuse, getConnection: refuse, promise: refuse };
  return;
}

const pool = mysql.createPool({
  host: env.MYSQL_HOST || 'localhost',
  port: Number(env.MYSQL_PORT || 3306),
  user: env.MYSQL_USER || '',
  password: env.MYSQL_PASSWORD || '',
  database: env.MYSQL_DATABASE || '',
  connectionLimit: Math.max(1, Number(env.MYSQL_CONNECTIONLIMIT || 10)),
  waitForConnections: true,
});

function socket(connection) {
  return connection && connection.stream;
}

pool.on('acquire', (connection) => {
  const stream = socket(connection);
  if (stream && typeof stream.ref === 'function') stream.ref();
});
pool.on('release', (connection) => {
  const stream = socket(connection);
  if (stream && typeof stream.unref === 'function') stream.unref();
});

pool[CLOSE] = () => pool.end(() => {});

module.exports = pool;
