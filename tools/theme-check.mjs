// Run Shopify's theme check on a theme app extension: `node tools/theme-check.mjs <dir>`.
// Prints every offense; exits 1 on any error or warning (severity 0 or 1), so CI fails on them.
import path from 'node:path';
import { check } from '@shopify/theme-check-node';

const root = path.resolve(process.argv[2] ?? 'extensions/pointbridge-points');
const offenses = await check(root, path.join(root, '.theme-check.yml'));
const names = ['error', 'warning', 'info'];
for (const o of offenses) {
  const where = o.uri.replace(`file://${root}/`, '');
  console.log(`${names[o.severity] ?? o.severity}: ${o.check}: ${where}:${o.start.line + 1} ${o.message}`);
}
const failing = offenses.filter((o) => o.severity <= 1).length;
console.log(`theme-check: ${offenses.length} offense(s), ${failing} error(s)/warning(s) in ${path.relative(process.cwd(), root)}`);
process.exit(failing ? 1 : 0);
