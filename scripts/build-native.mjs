#!/usr/bin/env node
// Builds Attune's native engine (native/) — run by `postinstall` and `npm run build:native`.
//
//   node scripts/build-native.mjs         the N-API addon, with cmake-js, into native/build;
//                                         the result is native/build/Release/attune_engine.node
//   node scripts/build-native.mjs --test  the engine's C++ tests and CLI, with plain CMake, into
//                                         native/build-tests, then runs them with ctest
//
// Both builds are incremental: running again recompiles only what changed. The addon is Node-API,
// so one build loads in Node and in Electron; cmake-js takes the headers from node-api-headers
// (native/package.json declares napi_versions, so nothing is downloaded) and node-addon-api from
// node_modules. It reads npm_config_nodedir too, though a Node-API build does not need it.
// The CUDA backend is compiled when CMake finds nvcc; the last line printed says whether it was.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const nativeDir = join(root, 'native')
const addonBuildDir = join(nativeDir, 'build')
const testBuildDir = join(nativeDir, 'build-tests')
const addonPath = join(addonBuildDir, 'Release', 'attune_engine.node')
const jobs = String(availableParallelism())
const MIN_CMAKE = [3, 25]

/** Plain words for what to install, per OS. */
const INSTALL_HINTS = {
  cmake: {
    linux: 'Debian/Ubuntu: `sudo apt install cmake`; Fedora: `sudo dnf install cmake`',
    darwin: '`brew install cmake`',
    win32: '`winget install Kitware.CMake`, or the installer from https://cmake.org/download/',
  },
  compiler: {
    linux: 'Debian/Ubuntu: `sudo apt install g++ make`; Fedora: `sudo dnf install gcc-c++ make`',
    darwin: 'the Xcode Command Line Tools: `xcode-select --install`',
    win32: 'Visual Studio Build Tools with the "Desktop development with C++" workload',
  },
}

function fail(message) {
  console.error(`\nbuild-native: ${message}`)
  process.exit(1)
}

function hint(tool) {
  return INSTALL_HINTS[tool][process.platform] ?? INSTALL_HINTS[tool].linux
}

/** stdout of `command --version`, or null when the command is not on PATH. */
function versionOf(command) {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8' })
  return result.error ? null : result.stdout
}

function checkTools() {
  const cmakeVersion = versionOf('cmake')
  if (cmakeVersion === null) {
    fail(`CMake ${MIN_CMAKE.join('.')} or newer is needed to build the native engine and was not found.\nInstall it (${hint('cmake')}), then run \`npm run build:native\`.`)
  }
  const [major = 0, minor = 0] = (/version (\d+)\.(\d+)/.exec(cmakeVersion)?.slice(1) ?? []).map(Number)
  if (major < MIN_CMAKE[0] || (major === MIN_CMAKE[0] && minor < MIN_CMAKE[1])) {
    fail(`CMake ${MIN_CMAKE.join('.')} or newer is needed; this one is ${major}.${minor}.\nUpdate it (${hint('cmake')}), then run \`npm run build:native\`.`)
  }
  // On Windows CMake finds Visual Studio itself and says so when it is missing.
  if (process.platform === 'win32') return
  const compilers = [process.env.CXX, 'c++', 'g++', 'clang++'].filter(Boolean)
  if (!compilers.some((cxx) => versionOf(cxx) !== null)) {
    fail(`A C++17 compiler is needed to build the native engine and none was found (tried ${compilers.join(', ')}).\nInstall one (${hint('compiler')}), then run \`npm run build:native\`.`)
  }
  if (versionOf('ninja') === null && versionOf('make') === null) {
    fail(`make or ninja is needed to build the native engine and neither was found.\nInstall one (${hint('compiler')}), then run \`npm run build:native\`.`)
  }
}

function run(command, args) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root })
  if (result.error) fail(`could not run ${command}: ${result.error.message}`)
  return result.status ?? 1
}

/** The line CMake left in the cache saying whether the CUDA backend was compiled, and why not. */
function cudaSummary(buildDir) {
  const cache = join(buildDir, 'CMakeCache.txt')
  const line = existsSync(cache) ? /^ATTUNE_CUDA_SUMMARY:INTERNAL=(.*)$/m.exec(readFileSync(cache, 'utf8')) : null
  if (!line?.[1]) return 'CUDA backend: unknown (no CMake cache)'
  return line[1].includes('not compiled') ? `${line[1]}. Install the CUDA Toolkit and delete ${relative(root, buildDir)} to add it.` : line[1]
}

function buildAddon() {
  const require = createRequire(import.meta.url)
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js')
  const status = run(process.execPath, [
    cmakeJs, 'build',
    '--directory', nativeDir,
    '--out', addonBuildDir,
    '--config', 'Release',
    '--target', 'attune_engine_addon',
    '--parallel', jobs,
    '--log-level', 'warn',
    '--CDATTUNE_BUILD_TESTS=OFF',
  ])
  if (status !== 0) fail('the native engine failed to build; the compiler output above says why.')
  if (!existsSync(addonPath)) fail(`the build finished but ${relative(root, addonPath)} is missing.`)
  try {
    // Loading it here catches link problems now rather than when the app first starts.
    require(addonPath)
  } catch (error) {
    fail(`${relative(root, addonPath)} was built but does not load: ${error instanceof Error ? error.message : String(error)}`)
  }
  console.log(`Native engine: ${relative(root, addonPath)}. ${cudaSummary(addonBuildDir)}`)
}

function buildAndRunTests() {
  // The tests' CUDA code as Ampere PTX only: a quarter of the shipped build's compile time, and it
  // still runs (compiled by the driver) on any GPU the GPU tests meet; scripts/gpu-test.sh builds
  // for the GPU in hand.
  const configure = ['-S', nativeDir, '-B', testBuildDir, '-DCMAKE_BUILD_TYPE=Release', '-DATTUNE_CUDA_ARCHITECTURES=80-virtual']
  // The generator is fixed at the first configure; name Ninja then, if it is there.
  if (!existsSync(join(testBuildDir, 'CMakeCache.txt')) && versionOf('ninja') !== null) configure.push('-G', 'Ninja')
  if (run('cmake', configure) !== 0) fail('configuring the native tests failed; CMake said why above.')
  if (run('cmake', ['--build', testBuildDir, '--config', 'Release', '--parallel', jobs]) !== 0) {
    fail('the native tests failed to build; the compiler output above says why.')
  }
  console.log(cudaSummary(testBuildDir))
  if (run('ctest', ['--test-dir', testBuildDir, '-C', 'Release', '--output-on-failure']) !== 0) {
    fail('native tests failed (see the ctest output above).')
  }
}

checkTools()
if (process.argv.includes('--test')) buildAndRunTests()
else buildAddon()
