/*
 * The production part of the webpack config that @grafana/create-plugin
 * 7.1.7 scaffolds (.config/webpack/webpack.config.ts), trimmed to what this
 * plugin uses: no CSS, SASS, images imported from code, lazy chunks or dev
 * server, and ts-loader instead of swc-loader (no native compiler to fetch).
 * `npm run build` runs it; `make plugin` adds the Go binaries (mage) and packs.
 */
import CopyWebpackPlugin from 'copy-webpack-plugin';
import fs from 'fs';
import path from 'path';
import type { Configuration } from 'webpack';

const SOURCE_DIR = 'src';
const DIST_DIR = 'dist';

const pluginJson = JSON.parse(fs.readFileSync(path.resolve(process.cwd(), SOURCE_DIR, 'plugin.json'), 'utf8'));
const pluginVersion: string = JSON.parse(fs.readFileSync(path.resolve(process.cwd(), 'package.json'), 'utf8')).version;

// Grafana provides these at run time; bundling them would break the plugin.
const externals: Configuration['externals'] = [
  'lodash',
  'jquery',
  'moment',
  'slate',
  'emotion',
  '@emotion/react',
  '@emotion/css',
  'prismjs',
  'react',
  'react/jsx-runtime',
  'react-dom',
  'react-redux',
  'redux',
  'rxjs',
  'i18next',
  'react-router',
  'd3',
  /^@grafana\/ui/i,
  /^@grafana\/runtime/i,
  /^@grafana\/data/i,
  /^@grafana\/schema/i,
];

// %VERSION% and %TODAY% in plugin.json and README.md, as create-plugin fills them.
const fillIn = (content: Buffer) =>
  content
    .toString()
    .replace(/%VERSION%/g, pluginVersion)
    .replace(/%TODAY%/g, new Date().toISOString().substring(0, 10))
    .replace(/%PLUGIN_ID%/g, pluginJson.id);

const config: Configuration = {
  context: path.join(process.cwd(), SOURCE_DIR),
  devtool: 'source-map',
  entry: { module: './module.ts' },
  externals,
  mode: 'production',
  module: {
    rules: [
      {
        exclude: /node_modules/,
        test: /\.tsx?$/,
        use: { loader: 'ts-loader', options: { transpileOnly: true } },
      },
    ],
  },
  output: {
    // Keep the Go binaries and their manifest when the frontend is rebuilt.
    clean: { keep: /(.*?_(amd64|arm(64)?)(.exe)?|go_plugin_build_manifest)/ },
    filename: '[name].js',
    library: { type: 'amd' },
    path: path.resolve(process.cwd(), DIST_DIR),
    publicPath: `public/plugins/${pluginJson.id}/`,
    uniqueName: pluginJson.id,
  },
  performance: { hints: false },
  plugins: [
    new CopyWebpackPlugin({
      patterns: [
        { from: '../README.md', to: '.', transform: fillIn },
        { from: 'plugin.json', to: '.', transform: fillIn },
        { from: '../LICENSE', to: '.' },
        { from: '../CHANGELOG.md', to: '.' },
        { from: 'img', to: 'img' },
      ],
    }),
  ],
  resolve: {
    extensions: ['.js', '.jsx', '.ts', '.tsx'],
    modules: [path.resolve(process.cwd(), SOURCE_DIR), 'node_modules'],
  },
};

export default config;
