// The administration application (jupyter_ext/src/admin/main.tsx, compiled by tsc into lib/):
// one script and one stylesheet, served by both hosts at /himalia/admin/ (himalia/hosts/admin).
// The lab extension's own bundle is made by `jupyter labextension build` and never reaches it.
const path = require('path');
const MiniCssExtractPlugin = require('mini-css-extract-plugin');

module.exports = (env, argv) => ({
  mode: argv.mode ?? 'production',
  devtool: argv.mode === 'development' ? 'source-map' : false,
  entry: {
    admin: ['./lib/admin/main.js', './jupyter_ext/style/admin.css']
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
