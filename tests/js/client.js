#!/usr/bin/env node
// A control-plane client in another language, as an outside user would write it: it knows
// no .proto of Stratum. It lists the services through server reflection, builds the
// ControlPlane client from the descriptors the server sends, and makes three calls.
// Prints one JSON object on stdout (tests/control_plane/test_js_client.py reads it).
//
// Env: STRATUM_ENDPOINT (host:port), STRATUM_CA_CERT (path to ca.pem), STRATUM_TOKEN,
// STRATUM_NODE (a node name to look up).
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { FileDescriptorProto, FileDescriptorSet } = require('protobufjs/ext/descriptor');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const endpoint = env('STRATUM_ENDPOINT');
const token = env('STRATUM_TOKEN');
const credentials = grpc.credentials.createSsl(fs.readFileSync(env('STRATUM_CA_CERT')));
// The server certificate names the control plane, not an address (stratum/pki.py SERVER_NAME).
const options = { 'grpc.ssl_target_name_override': 'stratum-control-plane', 'grpc.default_authority': 'stratum-control-plane' };
const DEADLINE_MS = 15000; // a call that gets no status (the old symptom of an oversized message) ends here
const deadline = () => Date.now() + DEADLINE_MS;
const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code);
const loaderOptions = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };

// One reflection stream: each request gets exactly one response, in order.
function reflectionSession() {
  const def = protoLoader.loadSync(path.join(__dirname, 'reflection.proto'), loaderOptions);
  const Reflection = grpc.loadPackageDefinition(def).grpc.reflection.v1alpha.ServerReflection;
  const client = new Reflection(endpoint, credentials, options);
  const stream = client.ServerReflectionInfo({ deadline: deadline() });
  const waiting = [];
  stream.on('data', (response) => waiting.shift().resolve(response));
  stream.on('error', (err) => { while (waiting.length) waiting.shift().reject(err); });
  const ask = (request) => new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    stream.write(request);
  });
  const close = () => { stream.end(); client.close(); };
  return { ask, close };
}

async function fetchDescriptors(session, symbol) {
  // Every file the service's file needs, transitively, by name.
  const files = new Map();
  const add = (response) => {
    if (response.error_response) throw new Error(`reflection: ${response.error_response.error_message}`);
    for (const bytes of response.file_descriptor_response.file_descriptor_proto) {
      const file = FileDescriptorProto.decode(bytes);
      files.set(file.name, file);
    }
  };
  add(await session.ask({ file_containing_symbol: symbol }));
  for (let missing; (missing = [...files.values()].flatMap((f) => f.dependency || []).filter((d) => !files.has(d))).length;) {
    for (const name of missing) add(await session.ask({ file_by_filename: name }));
  }
  return FileDescriptorSet.encode(FileDescriptorSet.create({ file: [...files.values()] })).finish();
}

function call(client, method, request, metadata) {
  return new Promise((resolve) => {
    client[method](request, metadata, { deadline: deadline() }, (err, response) => {
      if (err) resolve({ code: codeName(err.code), details: err.details });
      else resolve({ code: 'OK', response });
    });
  });
}

async function main() {
  const session = reflectionSession();
  const listed = await session.ask({ list_services: '' });
  const services = listed.list_services_response.service.map((s) => s.name).sort();
  const descriptorSet = await fetchDescriptors(session, 'stratum.v1.ControlPlane');
  session.close();

  const def = protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(descriptorSet), loaderOptions);
  const ControlPlane = grpc.loadPackageDefinition(def).stratum.v1.ControlPlane;
  const client = new ControlPlane(endpoint, credentials, options);
  const authorised = new grpc.Metadata();
  authorised.set('authorization', `Bearer ${token}`);

  const list = await call(client, 'ListNodes', {}, authorised);
  const node = await call(client, 'GetNode', { id_or_name: process.env.STRATUM_NODE || '' }, authorised);
  const noToken = await call(client, 'ListNodes', {}, new grpc.Metadata());
  const huge = await call(client, 'GetNode', { id_or_name: 'x'.repeat(8192) }, authorised);
  client.close();

  // Built from descriptors, protobufjs keeps a map field as its repeated {key, value} entries.
  const asMap = (m) => (Array.isArray(m) ? Object.fromEntries(m.map((e) => [e.key, e.value])) : m || {});
  const brief = (n) => ({ id: n.id, name: n.name, tier: n.tier, state: n.state, labels: asMap(n.labels),
    cpu_cores: n.capabilities ? n.capabilities.cpu_cores : null });
  console.log(JSON.stringify({
    services,
    list_nodes: { code: list.code, details: list.details, nodes: (list.response ? list.response.nodes || [] : []).map(brief) },
    get_node: { code: node.code, details: node.details, node: node.response ? brief(node.response) : null },
    no_token: noToken,
    huge_name: { code: huge.code, details: huge.details },
  }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
