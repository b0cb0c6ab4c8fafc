'use strict';
// require('../config') of an original plugin: the effective settings as the original exposed them.
// TYPE is "MASTER": every run here is the one run of its schedule. The values come from the plugin's
// environment (the original variables, built from the configuration and the connections in use), both
// as the variables themselves (config.MYSQL_HOST) and in the config.yml shape (config.mysql.host).
const env = process.env;

function number(name, fallback) {
  const value = Number(env[name]);
  return env[name] === undefined || env[name] === '' || Number.isNaN(value) ? fallback : value;
}

function flag(name, fallback) {
  return env[name] === undefined || env[name] === '' ? fallback : env[name] === 'true';
}

const VARIABLES = ['WARNINGLIMIT', 'FORECAST_DAYS', 'MYSQL_HOST', 'MYSQL_PORT', 'MYSQL_USER', 'MYSQL_PASSWORD',
  'MYSQL_DATABASE', 'MYSQL_CONNECTIONLIMIT', 'AWS_REGION', 'AWS_ACCESSKEYID', 'AWS_SECRETACCESSKEY', 'AWS_TOPICARN',
  'AWS_SSLENABLED', 'AWS_ENDPOINTURL', 'EXPORT_ENABLED', 'EXPORT_BUCKET', 'EXPORT_LOCALDIRECTORY',
  'EXPORT_REMOTEDIRECTORY', 'EXPORT_PURGE', 'EXPORT_DAYS', 'TZ'];

const config = {
  TYPE: 'MASTER',
  warninglimit: number('WARNINGLIMIT', 60),
  timezone: env.TZ || '',
  mysql: {
    host: env.MYSQL_HOST || 'localhost', port: number('MYSQL_PORT', 3306), user: env.MYSQL_USER || '',
    password: env.MYSQL_PASSWORD || '', database: env.MYSQL_DATABASE || '',
    connectionLimit: number('MYSQL_CONNECTIONLIMIT', 10),
  },
  aws: {
    region: env.AWS_REGION || '', accessKeyId: env.AWS_ACCESSKEYID || '',
    secretAccessKey: env.AWS_SECRETACCESSKEY || '', topicArn: env.AWS_TOPICARN || '',
    sslEnabled: flag('AWS_SSLENABLED', false), endpointUrl: env.AWS_ENDPOINTURL || '',
  },
  export: {
    enabled: flag('EXPORT_ENABLED', true), bucket: env.EXPORT_BUCKET || '',
    localDirectory: env.EXPORT_LOCALDIRECTORY || '/tmp/', remoteDirectory: env.EXPORT_REMOTEDIRECTORY || '',
    purge: flag('EXPORT_PURGE', true), days: number('EXPORT_DAYS', 1),
  },
  forecast: { days: number('FORECAST_DAYS', 7) },
};
for (const name of VARIABLES) {
  if (env[name] !== undefined) config[name] = env[name];
}
config.TYPE = 'MASTER';

module.exports = config;
