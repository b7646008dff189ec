import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// Unit tests run in Node against real parts (SQLite file, native addon, worker process);
// component tests mount Vue components in happy-dom.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          environment: 'node',
          include: ['test/unit/**/*.test.ts'],
          // Builds the engine worker from source so the host tests run the real child process.
          globalSetup: ['test/unit/engine-global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        plugins: [vue()],
        test: { name: 'components', environment: 'happy-dom', include: ['test/components/**/*.test.ts'] },
      },
    ],
  },
})
