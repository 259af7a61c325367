// decode / encode / show / info: crit's image commands, with crit's output format exactly
// (JSON text as Python's json.dumps writes it; a newline only when writing to stdout).
import { decodeImage, encodeImage, imageInfo, parseCritJson, stringifyCritJson } from '@criu/images';
import { IMAGE_IN, IMAGE_OUT, NO_PAYLOAD, PRETTY } from '../args/options.js';
import { CliJsonError } from '../errors.js';
import { readInput, writeOutput } from '../io.js';
import type { CommandContext, CommandSpec } from './types.js';

function optString(ctx: CommandContext, key: string): string | undefined {
  const v = ctx.args.options[key];
  return typeof v === 'string' ? v : undefined;
}

async function decodeTo(ctx: CommandContext, input: string | undefined, output: string | undefined, pretty: boolean, noPayload: boolean): Promise<number> {
  const { name, bytes } = await readInput(ctx.io, input);
  const image = decodeImage(bytes, { file: name, pretty, noPayload });
  const text = stringifyCritJson(image, pretty);
  writeOutput(ctx.io, output, output === undefined ? `${text}\n` : text);
  return 0;
}

async function runDecode(ctx: CommandContext): Promise<number> {
  return decodeTo(ctx, optString(ctx, 'in'), optString(ctx, 'out'), ctx.args.options.pretty === true, false);
}

async function runShow(ctx: CommandContext): Promise<number> {
  return decodeTo(ctx, ctx.args.positionals[0], undefined, true, ctx.args.options.nopl === true);
}

async function runEncode(ctx: CommandContext): Promise<number> {
  const { name, bytes } = await readInput(ctx.io, optString(ctx, 'in'));
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // crit: "Cannot read JSON. Maybe you are feeding me an image with protobuf data?"
    throw new CliJsonError(name, 'not UTF-8 text (an image with protobuf data? encode expects JSON)');
  }
  const image = parseCritJson(text, name);
  writeOutput(ctx.io, optString(ctx, 'out'), encodeImage(image, { file: name }));
  return 0;
}

async function runInfo(ctx: CommandContext): Promise<number> {
  const { name, bytes } = await readInput(ctx.io, ctx.args.positionals[0]);
  const info = imageInfo(bytes, { file: name });
  ctx.io.writeStdout(`${stringifyCritJson({ magic: info.magic, count: info.count }, true)}\n`);
  return 0;
}

export const IMAGE_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'decode',
    summary: 'convert an image from binary to JSON (as crit decode)',
    usage: '[-i FILE] [-o FILE] [--pretty]',
    options: [IMAGE_IN, IMAGE_OUT, PRETTY],
    positionals: { min: 0, max: 0 },
    run: runDecode,
  },
  {
    name: 'encode',
    summary: 'convert an image from JSON to binary (as crit encode)',
    usage: '[-i FILE] [-o FILE]',
    options: [IMAGE_IN, IMAGE_OUT],
    positionals: { min: 0, max: 0 },
    run: runEncode,
  },
  {
    name: 'show',
    summary: 'print an image as human-readable JSON (decode --pretty)',
    usage: 'FILE [--nopl]',
    options: [NO_PAYLOAD],
    positionals: { min: 1, max: 1 },
    run: runShow,
  },
  {
    name: 'info',
    summary: "print an image's magic and number of entries",
    usage: 'FILE',
    options: [],
    positionals: { min: 1, max: 1 },
    run: runInfo,
  },
];
