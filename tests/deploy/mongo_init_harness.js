// Runs docker/mongo-init/*.js under node with a recording stand-in for mongosh's `db`,
// and prints the operations as JSON lines, so tests can replay them with pymongo
// against an auth-enabled server. EXISTING_USERS / EXISTING_ROLES (comma lists) say
// what the stand-in reports as already present (the re-run path).
const fs = require("fs");
const vm = require("vm");

const ops = [];
const existingUsers = new Set((process.env.EXISTING_USERS || "").split(",").filter(Boolean));
const existingRoles = new Set((process.env.EXISTING_ROLES || "").split(",").filter(Boolean));

function database(name) {
  const coll = (c) => ({
    createIndex: (keys, options) => ops.push({ op: "createIndex", db: name, coll: c, keys, options }),
  });
  return {
    getName: () => name,
    getSiblingDB: (other) => database(other),
    getCollection: coll,
    getUser: (user) => (existingUsers.has(`${name}.${user}`) ? { user } : null),
    createUser: (doc) => ops.push({ op: "createUser", db: name, ...doc }),
    updateUser: (user, update) => ops.push({ op: "updateUser", db: name, user, ...update }),
    getRole: (role) => (existingRoles.has(`${name}.${role}`) ? { role } : null),
    createRole: (doc) => ops.push({ op: "createRole", db: name, ...doc }),
    updateRole: (role, update) => ops.push({ op: "updateRole", db: name, role, ...update }),
  };
}

const sandbox = { db: database("admin"), print: (...a) => ops.push({ op: "print", text: a.join(" ") }),
                  require, process, Object, JSON, Error };
vm.createContext(sandbox);
try {
  vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), sandbox, { filename: process.argv[2] });
} catch (err) {
  console.log(JSON.stringify({ op: "error", message: String(err.message) }));
  process.exit(3);
}
for (const op of ops) console.log(JSON.stringify(op));
