// Least-privilege users of the signal bridge, created on MongoDB's FIRST start.
//
// The official mongo image runs this file (mongosh, authenticated as the root user
// from MONGO_INITDB_ROOT_USERNAME/PASSWORD) only when /data/db is empty. To rotate
// passwords or change roles later, run `signal-bootstrap-users` (same plan, Python).
// Passwords come from environment variables or *_FILE secret files; they are never
// printed. The PLAN block is JSON and must equal
// signal_export.security.bootstrap.plan_user_roles(): tests/deploy checks it.
// "@signals" / "@market" stand for EXT_SIG_DB / MARKET_DB.

// BEGIN PLAN
const PLAN = {
  "auth_db": "admin",
  "writeback_role": "signalBridgeStrategyWriteback",
  "writeback_actions": ["find", "insert", "update", "remove", "createIndex"],
  "users": {
    "exporter": {
      "name_env": "MONGO_EXPORTER_USER", "default_name": "signal_exporter",
      "password_env": "MONGO_EXPORTER_PASSWORD",
      "roles": [{"role": "readWrite", "db": "@signals"}, {"role": "readWrite", "db": "@market"}]
    },
    "strategy": {
      "name_env": "MONGO_STRATEGY_USER", "default_name": "signal_strategy",
      "password_env": "MONGO_STRATEGY_PASSWORD",
      "roles": [{"role": "read", "db": "@signals"}]
    },
    "monitor": {
      "name_env": "MONGO_MONITOR_USER", "default_name": "signal_monitor",
      "password_env": "MONGO_MONITOR_PASSWORD",
      "roles": [{"role": "read", "db": "@signals"}, {"role": "read", "db": "@market"}]
    },
    "ingest": {
      "name_env": "MONGO_INGEST_USER", "default_name": "signal_ingest",
      "password_env": "MONGO_INGEST_PASSWORD",
      "roles": [{"role": "readWrite", "db": "@signals"}]
    }
  }
};
// END PLAN

const fs = require("fs");

function env(name, fallback) {
  const value = process.env[name];
  return value && value.length ? value : fallback;
}

function secret(name) {
  const file = env(name + "_FILE");
  const value = env(name);
  if (file && value) throw new Error(`${name} and ${name}_FILE are both set; set only one`);
  if (file) return fs.readFileSync(file, "utf8").replace(/\r?\n$/, "");
  if (!value) throw new Error(`${name} is not set: set ${name} or ${name}_FILE`);
  return value;
}

const dbNames = { "@signals": env("EXT_SIG_DB", "signals"), "@market": env("MARKET_DB", "market") };
if (dbNames["@signals"] === dbNames["@market"]) {
  throw new Error("EXT_SIG_DB and MARKET_DB must differ (separate databases, separate roles)");
}
const resolve = (roles) => roles.map((r) => ({ role: r.role, db: dbNames[r.db] }));
const admin = db.getSiblingDB(PLAN.auth_db);

// Optional write-back: the strategy may write these collections of the signals DB, nothing else.
const writeback = env("MONGO_STRATEGY_WRITEBACK_COLLECTIONS", "")
  .split(",").map((s) => s.trim()).filter((s) => s.length);
if (writeback.length) {
  const signals = db.getSiblingDB(dbNames["@signals"]);
  const privileges = writeback.map((c) => ({
    resource: { db: dbNames["@signals"], collection: c }, actions: PLAN.writeback_actions }));
  if (signals.getRole(PLAN.writeback_role)) {
    signals.updateRole(PLAN.writeback_role, { privileges: privileges, roles: [] });
  } else {
    signals.createRole({ role: PLAN.writeback_role, privileges: privileges, roles: [] });
  }
  PLAN.users.strategy.roles.push({ role: PLAN.writeback_role, db: "@signals" });
  print(`role ${PLAN.writeback_role}@${dbNames["@signals"]} on ${writeback.join(", ")}`);
}

for (const [key, spec] of Object.entries(PLAN.users)) {
  const name = env(spec.name_env, spec.default_name);
  const roles = resolve(spec.roles);
  const pwd = secret(spec.password_env);
  if (admin.getUser(name)) {
    admin.updateUser(name, { pwd: pwd, roles: roles });
    print(`updated ${key} user ${name}@${PLAN.auth_db}`);
  } else {
    admin.createUser({ user: name, pwd: pwd, roles: roles, mechanisms: ["SCRAM-SHA-256"] });
    print(`created ${key} user ${name}@${PLAN.auth_db}`);
  }
}

// Create both databases with their unique indexes (the exporter re-ensures them at start).
const sig = db.getSiblingDB(dbNames["@signals"]);
sig.getCollection(env("EXT_SIG_COLLECTION", "crypto_signals")).createIndex(
  { strategy_id: 1, pair: 1, timeframe: 1, ts: 1 }, { unique: true, name: "signal_key" });
const mkt = db.getSiblingDB(dbNames["@market"]);
mkt.getCollection(env("MARKET_1D_COLLECTION", "crypto_market")).createIndex(
  { symbol: 1, date: 1 }, { unique: true, name: "symbol_date" });
mkt.getCollection(env("MARKET_1M_COLLECTION", "crypto_market_1m")).createIndex(
  { symbol: 1, datetime: 1 }, { unique: true, name: "symbol_datetime" });
