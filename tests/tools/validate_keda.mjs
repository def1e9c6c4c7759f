// Validates every KEDA ScaledObject in a rendered manifest against KEDA's own schema (from the
// @kubernetes-models/keda package scripts/tools.sh installs), offline; prints how many it checked.
// Usage: node validate_keda.mjs <node_modules folder> <manifest.yaml>
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, manifest] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(path.join(modules, file)).href);
const yaml = (await load('js-yaml/index.js')).default;
const { ScaledObject } = await load('@kubernetes-models/keda/keda.sh/v1alpha1/index.js');
let checked = 0;
for (const document of yaml.loadAll(fs.readFileSync(manifest, 'utf8'))) {
  if (document && document.apiVersion === 'keda.sh/v1alpha1' && document.kind === 'ScaledObject') {
    new ScaledObject(document).validate();
    checked += 1;
  }
}
console.log(checked);
