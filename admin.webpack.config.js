// The administration application (jupyter_ext/src/admin/main.tsx, compiled by tsc into lib/):
// one script and one stylesheet, served by both hosts at /himalia/admin/ (himalia/hosts/admin).
// The lab extension's own bundle is made by `jupyter labextension build` and never reaches it.
// Its stylesheet is jupyter_ext/style/admin.css then each page's admin-<page>.css.
const fs = require('fs');
const path = require('path');
const MiniCssExtractPlugin = require('mini-css-extract-plugin');

function stylesheets() {
  const folder = 'jupyter_ext/style';
  const pages = fs
    .readdirSync(folder)
    .filter(name => /^admin-.+\.css$/.test(name))
    .sort();
  return ['admin.css', ...pages].map(name => `./${folder}/${name}`);
}

module.exports = (env, argv) => ({
  mode: argv.mode ?? 'production',
  devtool: argv.mode === 'development' ? 'source-map' : false,
  entry: {
    admin: ['./lib/admin/main.js', ...stylesheets()]
  },
  output: {
    path: path.resolve(__dirname, 'server_ext/himalia/hosts/admin/static'),
    filename: '[name].js',
    clean: true
  },
  module: {
    rules: [
      { test: /\.css$/, use: [MiniCssExtractPlugin.loader, 'css-loader'] }
    ]
  },
  plugins: [new MiniCssExtractPlugin({ filename: '[name].css' })],
  performance: { hints: false }
});
