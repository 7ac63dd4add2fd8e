// Bundles each target's module the way the Shopify CLI does (esbuild, Preact JSX), into dist/.
// Proves in CI that the extension compiles with the pinned packages; deploys use `shopify app deploy`.
import { build } from 'esbuild';

for (const entry of ['PointsPage', 'ProfileBlock']) {
  const result = await build({
    entryPoints: [`src/${entry}.jsx`],
    outfile: `dist/${entry}.js`,
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    metafile: true,
    logLevel: 'warning',
  });
  const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
  console.log(`pointbridge-account: dist/${entry}.js ${(bytes / 1024).toFixed(1)} KiB`);
}
