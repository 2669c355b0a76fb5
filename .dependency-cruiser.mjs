// dependency-cruiser: no import circles, between files or between folders.
// `npm run lint` runs it over src/, test/, bench/ and certs/.
/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      // A circle between two files makes one of them load half-initialised,
      // depending on which is imported first. Type-only imports count too:
      // they still tie the two files into one unit a reader must take whole.
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      // A circle between folders (admin/ imports gateway/, gateway/ imports
      // admin/) means neither folder is a layer that can be read alone.
      name: 'no-circular-folders',
      severity: 'error',
      scope: 'folder',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    // Read the .ts sources before compilation so `import type` is seen.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
