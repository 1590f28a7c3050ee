// Validates custom resources against the schemas of their CRDs, strictly.
//
// Usage: node validate-crds.mjs <node_modules dir> < objects.json
// Reads a JSON array of objects on stdin and writes a JSON array of problems
// ({index, path, message}) on stdout. The kubernetes-models packages ship their CRD schemas as
// validators compiled by ajv (no JSON schema files), so this runs those validators. Compiled
// validators accept unknown fields, so strictness is added here: every object is wrapped in a
// Proxy that records which keys the validator looked at. A key in a fixed-shape object that the
// validator never read is a field the schema does not know (a typo, or a field of another
// version). Objects whose keys the validator enumerated are maps (labels, selectors) and may
// hold anything their value schema allows.

import { readFileSync } from "node:fs";
import { join } from "node:path";

// Where `npm ci` installed this folder's package.json (argument 1).
const nodeModules = process.argv[2];
const schemas = {
  "autoscaling.k8s.io/v1/VerticalPodAutoscaler":
    "@kubernetes-models/autoscaler/_schemas/IoK8sAutoscalerVerticalPodAutoscalerPkgApisAutoscalingK8sIoV1VerticalPodAutoscaler.js",
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor.js",
  "monitoring.coreos.com/v1/PrometheusRule":
    "@kubernetes-models/prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1PrometheusRule.js",
  "gateway.networking.k8s.io/v1/HTTPRoute":
    "@kubernetes-models/gateway-api/_schemas/IoK8sSigsGatewayApiApisV1HTTPRoute.js",
  "keda.sh/v1alpha1/ScaledObject": "@kubernetes-models/keda/_schemas/ComGithubKedacoreKedaV2ApisKedaV1alpha1ScaledObject.js",
  "keda.sh/v1alpha1/TriggerAuthentication":
    "@kubernetes-models/keda/_schemas/ComGithubKedacoreKedaV2ApisKedaV1alpha1TriggerAuthentication.js",
};

function tracked(value, path, records) {
  if (value === null || typeof value !== "object") return value;
  const record = { path, target: value, read: new Set(), enumerated: false };
  records.push(record);
  const children = new Map();
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      const child = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || child === null || typeof child !== "object") return child;
      if (!children.has(key)) children.set(key, tracked(child, `${path}/${key}`, records));
      return children.get(key);
    },
    has(target, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

const objects = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const [index, object] of objects.entries()) {
  const key = `${object.apiVersion}/${object.kind}`;
  const module = schemas[key];
  if (!module) {
    problems.push({ index, path: "", message: `no CRD schema known for ${key}` });
    continue;
  }
  const { validate } = await import(join(nodeModules, module));
  const records = [];
  if (!validate(tracked(object, "", records))) {
    for (const error of validate.errors) {
      problems.push({ index, path: error.instancePath, message: `${error.keyword}: ${JSON.stringify(error.params)}` });
    }
  }
  for (const record of records) {
    if (Array.isArray(record.target) || record.enumerated) continue;
    for (const field of Object.keys(record.target)) {
      if (!record.read.has(field)) {
        problems.push({ index, path: `${record.path}/${field}`, message: "unknown field" });
      }
    }
  }
}
process.stdout.write(JSON.stringify(problems));
