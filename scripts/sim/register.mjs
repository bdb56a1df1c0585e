/** `node --import ./scripts/sim/register.mjs …`: installs ./loader.mjs. */
import { register } from 'node:module';

register('./loader.mjs', import.meta.url);
