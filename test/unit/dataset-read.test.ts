import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readDatasetBytes, readDatasetFile, type DatasetReadResult } from '../../src-main/domain/dataset/read'
import { detectFormat } from '../../src-main/domain/dataset/formats'
import { describeProblem } from '../../src-main/domain/dataset/types'

// Reading dataset files (cli.md, "Data semantics"): the committed fixtures in
// test/fixtures/datasets/, and files written to a temp folder for each edge case.

const fixtures = join(process.cwd(), 'test', 'fixtures', 'datasets')
let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'attune-dataset-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let fileCount = 0
async function readText(name: string, content: string | Uint8Array, options = {}): Promise<DatasetReadResult> {
  const path = join(dir, `${fileCount++}-${name}`)
  writeFileSync(path, content)
  return readDatasetFile(path, options)
}

const described = (result: DatasetReadResult) => result.problems.map(describeProblem)
const jsonl = (...records: unknown[]) => records.map((record) => JSON.stringify(record)).join('\n') + '\n'

describe('the committed fixtures', () => {
  it('reads every format', async () => {
    const text = await readDatasetFile(join(fixtures, 'text.jsonl'))
    expect(text).toMatchObject({ fileKind: 'jsonl', format: 'text', recordFormat: 'text', problems: [] })
    expect(text.records.map((r) => r.record)).toEqual([
      { kind: 'text', text: 'The sea counts the waves.' },
      { kind: 'text', text: 'A robot writes a poem about the café.' },
      { kind: 'text', text: 'Numbers: 1, 2, 3.' },
    ])
    expect(text.records.map((r) => [r.unit, r.line])).toEqual([
      ['line', 1],
      ['line', 2],
      ['line', 3],
    ])

    const messages = await readDatasetFile(join(fixtures, 'messages.jsonl'))
    expect(messages).toMatchObject({ format: 'messages', problems: [] })
    expect(messages.records[1]!.record).toEqual({
      kind: 'messages',
      messages: [
        { role: 'user', content: 'Capital of France?' },
        { role: 'assistant', content: 'Paris.' },
        { role: 'user', content: 'And of Italy?' },
        { role: 'assistant', content: 'Rome.' },
      ],
    })

    const alpaca = await readDatasetFile(join(fixtures, 'alpaca.jsonl'))
    expect(alpaca).toMatchObject({ format: 'alpaca', problems: [] })
    expect(alpaca.records.map((r) => r.record)).toEqual([
      { kind: 'messages', messages: [{ role: 'user', content: 'Translate to French.\n\nGood morning' }, { role: 'assistant', content: 'Bonjour' }] },
      { kind: 'messages', messages: [{ role: 'user', content: 'Name a colour.' }, { role: 'assistant', content: 'Blue' }] },
      { kind: 'messages', messages: [{ role: 'user', content: 'Say hi.' }, { role: 'assistant', content: 'Hi!' }] },
    ])

    const sharegpt = await readDatasetFile(join(fixtures, 'sharegpt.jsonl'))
    expect(sharegpt).toMatchObject({ format: 'sharegpt', problems: [] })
    expect(sharegpt.records[0]!.record).toEqual({
      kind: 'messages',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: '2+2?' },
        { role: 'assistant', content: '4' },
      ],
    })

    const pc = await readDatasetFile(join(fixtures, 'prompt-completion.jsonl'))
    expect(pc).toMatchObject({ format: 'prompt-completion', problems: [] })
    expect(pc.records[0]!.record).toEqual({ kind: 'prompt-completion', prompt: 'The capital of France is', completion: ' Paris.' })
  })

  it('reads a JSON array, numbering its records', async () => {
    const result = await readDatasetFile(join(fixtures, 'records.json'))
    expect(result).toMatchObject({ fileKind: 'json-array', format: 'prompt-completion', problems: [] })
    expect(result.records.map((r) => [r.unit, r.line, r.fileLine])).toEqual([
      ['record', 1, 2],
      ['record', 2, 6],
    ])
  })

  it('accepts a byte order mark and CRLF line ends without a final newline', async () => {
    const result = await readDatasetFile(join(fixtures, 'bom-crlf.jsonl'))
    expect(result.problems).toEqual([])
    expect(result.records.map((r) => r.record)).toEqual([
      { kind: 'text', text: 'first' },
      { kind: 'text', text: 'second' },
    ])
  })

  it('names the line of every kind of error in broken.jsonl, and keeps the good record', async () => {
    const result = await readDatasetFile(join(fixtures, 'broken.jsonl'))
    expect(result.format).toBe('messages')
    expect(result.records.map((r) => r.line)).toEqual([1])
    expect(described(result)).toEqual([
      'line 2: the line is blank; each line must hold one record (remove the empty line)',
      expect.stringMatching(/^line 3: the line is not valid JSON: expected ',' or ']' after array element \(column 48\); each record must be a whole JSON object on a single line$/),
      'line 4: "messages[1].content" is empty',
      'line 5: "messages[2].role" is "bot"; use system, user or assistant',
      'line 6: "messages" is missing',
      expect.stringMatching(/^line 7: the line is not valid UTF-8 text/),
    ])
    expect(result.problems.find((p) => p.line === 5)).toMatchObject({ field: 'messages[2].role' })
  })

  it('reads CSV with quoted delimiters, newlines and doubled quotes', async () => {
    const result = await readDatasetFile(join(fixtures, 'alpaca.csv'))
    expect(result).toMatchObject({ fileKind: 'csv', format: 'csv', recordFormat: 'alpaca', problems: [] })
    expect(result.csv).toEqual({ delimiter: ',', header: ['instruction', 'input', 'output'], mapping: { instruction: 'instruction', input: 'input', output: 'output' } })
    expect(result.records.map((r) => [r.line, r.fileLine, r.record])).toEqual([
      [2, 2, { kind: 'messages', messages: [{ role: 'user', content: 'Summarise, briefly.\n\nA long, long text\nwith two lines' }, { role: 'assistant', content: 'It is "long".' }] }],
      [3, 4, { kind: 'messages', messages: [{ role: 'user', content: 'Name a colour.' }, { role: 'assistant', content: 'Blue' }] }],
    ])
  })

  it('reads a semicolon CSV with question/answer columns as messages', async () => {
    const result = await readDatasetFile(join(fixtures, 'qa-semicolon.csv'))
    expect(result).toMatchObject({ recordFormat: 'messages', problems: [], csv: { delimiter: ';', mapping: { question: 'user', answer: 'assistant' } } })
    expect(result.records[1]!.record).toEqual({ kind: 'messages', messages: [{ role: 'user', content: 'Say "hi"' }, { role: 'assistant', content: 'hi' }] })
  })

  it.each([
    ['paper.pdf', 'pdf', 'a PDF document'],
    ['letter.docx', 'word', 'a Word document'],
    ['notes.txt', 'text', 'a plain text document'],
  ])('recognises %s as a document and explains it', async (name, document, description) => {
    const result = await readDatasetFile(join(fixtures, name))
    expect(result).toMatchObject({ fileKind: 'document', document, format: null, records: [] })
    expect(result.problems).toHaveLength(1)
    expect(result.problems[0]).toMatchObject({ unit: 'file', line: 0 })
    expect(result.problems[0]!.message).toContain(`${name} is ${description}, not a dataset of examples`)
    expect(result.problems[0]!.message).toContain('turn it into examples')
  })
})

describe('JSONL', () => {
  it('accepts a final newline, and no final newline', async () => {
    for (const content of ['{"text":"a"}\n{"text":"b"}\n', '{"text":"a"}\n{"text":"b"}']) {
      const result = await readText('a.jsonl', content)
      expect(result.records).toHaveLength(2)
      expect(result.problems).toEqual([])
    }
  })

  it('calls a second final newline a blank line', async () => {
    const result = await readText('a.jsonl', '{"text":"a"}\n\n')
    expect(described(result)).toEqual(['line 2: the line is blank; each line must hold one record (remove the empty line)'])
  })

  it('reports blank lines (spaces only too) and CRLF blank lines by number', async () => {
    const result = await readText('a.jsonl', '{"text":"a"}\r\n\r\n   \r\n{"text":"b"}\r\n')
    expect(result.problems.map((p) => p.line)).toEqual([2, 3])
    expect(result.records.map((r) => r.line)).toEqual([1, 4])
  })

  it('reports invalid UTF-8 on its line and keeps reading', async () => {
    const bytes = Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n{"text":"also ok"}\n')])
    const result = await readText('a.jsonl', bytes)
    expect(result.records.map((r) => r.line)).toEqual([1, 3])
    expect(described(result)).toEqual([expect.stringMatching(/^line 2: the line is not valid UTF-8 text: save the file as UTF-8/)])
  })

  it('explains JSON errors with the column', async () => {
    const result = await readText('a.jsonl', '{"text": "a",}\n{"text" "b"}\nnot json\n')
    expect(described(result)).toEqual([
      'line 1: the line is not valid JSON: expected double-quoted property name (column 14)',
      "line 2: the line is not valid JSON: expected ':' after property name (column 9)",
      "line 3: the line is not valid JSON: unexpected token 'o'",
    ])
  })

  it('says a pretty-printed JSON object is not JSONL', async () => {
    const result = await readText('a.jsonl', '{\n  "text": "a"\n}\n')
    expect(described(result)[0]).toMatch(/^line 1: the line is not valid JSON: .*each record must be a whole JSON object on a single line$/)
  })

  it('reports records that are not objects', async () => {
    const result = await readText('a.jsonl', '{"text":"a"}\n["text"]\n"text"\n42\nnull\n')
    expect(described(result)).toEqual([
      'line 2: the record is a list, not an object like {"text": "…"}',
      'line 3: the record is a string, not an object like {"text": "…"}',
      'line 4: the record is a number, not an object like {"text": "…"}',
      'line 5: the record is null, not an object like {"text": "…"}',
    ])
  })

  it('reads a 100 MB file by streaming', async () => {
    const line = JSON.stringify({ text: 'x'.repeat(990) }) + '\n' // 1,003 bytes
    const count = 100_000
    const path = join(dir, 'large.jsonl')
    writeFileSync(path, line.repeat(count))
    const { scanDatasetFile } = await import('../../src-main/domain/dataset/read')
    let records = 0
    let lastLine = 0
    const progress: number[] = []
    const shape = await scanDatasetFile(path, { onProgress: (read, total) => progress.push(read / total) }, (item) => {
      if (item.kind !== 'record') throw new Error(describeProblem(item.problem))
      records++
      lastLine = item.record.line
    })
    expect(shape.format).toBe('text')
    expect(records).toBe(count)
    expect(lastLine).toBe(count)
    expect(progress.length).toBeGreaterThan(90)
    expect(progress.at(-1)).toBe(1)
  })
})

describe('field problems', () => {
  it.each([
    [{ text: '' }, 'text', '"text" is empty'],
    [{ text: '   ' }, 'text', '"text" is empty'],
    [{ text: 5 }, 'text', '"text" must be text, not the number 5'],
    [{ text: null }, 'text', '"text" is missing'],
  ])('text %j', async (record, field, message) => {
    const result = await readText('a.jsonl', jsonl({ text: 'fine' }, record), { format: 'text' })
    expect(result.problems).toEqual([{ unit: 'line', line: 2, field, message }])
  })

  it('names every missing field of prompt-completion and alpaca', async () => {
    const pc = await readText('a.jsonl', jsonl({ prompt: 'p', completion: 'c' }, { prompt: 'p' }, { completion: '' }))
    expect(described(pc)).toEqual(['line 2: "completion" is missing', 'line 3: "prompt" is missing; "completion" is empty'])
    const alpaca = await readText('a.jsonl', jsonl({ instruction: 'i', output: 'o' }, { instruction: 'i', input: 3, output: 'o' }, { instruction: '', output: 'o' }))
    expect(described(alpaca)).toEqual(['line 2: "input" must be text, not the number 3', 'line 3: "instruction" is empty'])
  })

  it('checks every turn of a conversation', async () => {
    const result = await readText(
      'a.jsonl',
      jsonl(
        { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
        { messages: [] },
        { messages: 'hi' },
        { messages: [{ role: 'user', content: 'hi' }] },
        { messages: [{ content: 'hi' }, { role: 'assistant' }] },
        { messages: [{ from: 'human', value: 'hi' }, { role: 'assistant', content: 'x' }] },
        { messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }, { role: 'assistant', content: 'x' }] },
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }, { role: 'assistant', content: 'x' }] },
        { messages: [{ role: 'user', content: 'hi' }, 'hello'] },
      ),
    )
    expect(result.records.map((r) => r.line)).toEqual([1, 7])
    expect(result.records[1]!.record).toEqual({ kind: 'messages', messages: [{ role: 'user', content: 'ab' }, { role: 'assistant', content: 'x' }] })
    expect(described(result)).toEqual([
      'line 2: "messages" is empty: it needs at least a user turn and an assistant turn',
      'line 3: "messages" must be a list of turns like [{"role": "user", "content": "…"}], not the text "hi"',
      'line 4: "messages" has no "assistant" turn, so there is nothing to learn from',
      'line 5: "messages[0].role" is missing; use system, user or assistant; "messages[1].content" is missing',
      expect.stringMatching(/^line 6: "messages\[0\].role" is missing; use system, user or assistant \(it has "from" and "value", as in ShareGPT/),
      expect.stringMatching(/^line 8: "messages\[0\].content" must be text; a list of parts other than/),
      'line 9: "messages[1]" must be an object like {"role": "user", "content": "…"}, not the text "hello"',
    ])
  })

  it('checks ShareGPT roles by their own names', async () => {
    const result = await readText('a.jsonl', jsonl({ conversations: [{ from: 'user', value: 'hi' }, { from: 'gpt', value: 'x' }] }, { conversations: [{ from: 'human', value: 'hi' }] }))
    expect(described(result)).toEqual(['line 1: "conversations[0].from" is "user"; use system, human or gpt', 'line 2: "conversations" has no "gpt" turn, so there is nothing to learn from'])
  })

  it('says when a record looks like another format than the file', async () => {
    const result = await readText('a.jsonl', jsonl({ text: 'a' }, { text: 'b' }, { prompt: 'p', completion: 'c' }))
    expect(result.format).toBe('text')
    expect(described(result)).toEqual(['line 3: "text" is missing (this record looks like prompt-completion; one file must use one format)'])
  })
})

describe('format detection and --format', () => {
  it('detectFormat weighs the keys of the first records', () => {
    expect(detectFormat([{ text: 'a' }, { text: 'b' }])).toMatchObject({ format: 'text', matching: 2, examined: 2, alsoFits: [], mixedWith: [] })
    expect(detectFormat([{ messages: [] }])).toMatchObject({ format: 'messages', explanation: 'messages (detected: the first record has "messages")' })
    expect(detectFormat([{ conversations: [] }]).format).toBe('sharegpt')
    expect(detectFormat([{ instruction: 'i', output: 'o' }]).format).toBe('alpaca')
    expect(detectFormat([{ prompt: 'p', completion: 'c' }]).format).toBe('prompt-completion')
    // Ties go to the richer format, and the other reading is offered.
    expect(detectFormat([{ prompt: 'p', completion: 'c', text: 't' }])).toMatchObject({ format: 'prompt-completion', alsoFits: ['text'] })
    expect(detectFormat([{ messages: [], conversations: [] }])).toMatchObject({ format: 'messages', alsoFits: ['sharegpt'] })
    // A mixed file goes with the majority; a tie goes to the richer format.
    expect(detectFormat([{ text: 'a' }, { prompt: 'p', completion: 'c' }, { text: 'b' }])).toMatchObject({
      format: 'text',
      matching: 2,
      mixedWith: ['prompt-completion'],
      explanation: 'text (detected: 2 of the first 3 records have "text")',
    })
    expect(detectFormat([{ text: 'a' }, { messages: [] }]).format).toBe('messages')
    // Nothing known.
    expect(detectFormat([42, 'x'])).toMatchObject({ format: null, explanation: 'the records are not JSON objects' })
    expect(detectFormat([])).toMatchObject({ format: null })
  })

  it('prefers the richer format when records fit two, and says how to choose the other', async () => {
    const result = await readText('a.jsonl', jsonl({ instruction: 'i', input: '', output: 'o', text: '### Instruction: i ### Response: o' }))
    expect(result.format).toBe('alpaca')
    expect(result.explanation).toContain('--format text')
    const forced = await readText('a.jsonl', jsonl({ instruction: 'i', input: '', output: 'o', text: 'full' }), { format: 'text' })
    expect(forced.format).toBe('text')
    expect(forced.records[0]!.record).toEqual({ kind: 'text', text: 'full' })
    expect(forced.explanation).toBe('text (chosen with --format)')
  })

  it('goes with the format most records have in a mixed file, and flags the others', async () => {
    const result = await readText('a.jsonl', jsonl({ prompt: 'p', completion: 'c' }, { text: 't' }, { prompt: 'p', completion: 'c' }))
    expect(result.format).toBe('prompt-completion')
    expect(result.problems.map((p) => p.line)).toEqual([2])
  })

  it('asks for --format when no record has known fields', async () => {
    const result = await readText('a.jsonl', jsonl({ question: 'q', answer: 'a' }, { question: 'q2', answer: 'a2' }))
    expect(result.format).toBeNull()
    expect(result.records).toEqual([])
    expect(described(result)).toEqual([expect.stringMatching(/^Attune can't tell the format: the records have "question", "answer", and none of the fields Attune knows \(.*\)\. Use records like .*--format\.$/)])
  })

  it('does not give up detecting after many broken lines', async () => {
    const result = await readText('a.jsonl', 'oops\n'.repeat(1500) + jsonl({ text: 'a' }, { text: 'b' }))
    expect(result.format).toBe('text')
    expect(result.records.map((r) => r.line)).toEqual([1501, 1502])
    expect(result.problems).toHaveLength(1500)
    expect(result.problems.map((p) => p.line)).toEqual(Array.from({ length: 1500 }, (_, i) => i + 1))
  })

  it('detects from the first records only, then reads on in order', async () => {
    const records = [...Array.from({ length: 60 }, (_, i) => ({ text: `t${i}` })), { bad: true }, { text: 'last' }]
    const result = await readText('a.jsonl', jsonl(...records))
    expect(result.records).toHaveLength(61)
    expect(result.records.at(-1)!.line).toBe(62)
    expect(result.problems.map((p) => p.line)).toEqual([61])
  })

  it('reads a .csv as JSON when a JSON format is forced, and a .txt as CSV with --format csv', async () => {
    const json = await readText('data.csv', jsonl({ text: 'a' }), { format: 'text' })
    expect(json).toMatchObject({ fileKind: 'jsonl', format: 'text' })
    const csv = await readText('data.txt', 'text\nhello\n', { format: 'csv' })
    expect(csv).toMatchObject({ fileKind: 'csv', format: 'csv', recordFormat: 'text' })
  })

  it('reads a .txt whose first line is a CSV header as CSV', async () => {
    const result = await readText('data.txt', 'prompt,completion\nhi,there\n')
    expect(result).toMatchObject({ fileKind: 'csv', recordFormat: 'prompt-completion', problems: [] })
  })
})

describe('JSON arrays', () => {
  it('names the record and its line for each problem', async () => {
    const content = '[\n  {"text": "a"},\n  {"text": ""},\n  {"text": "b",},\n  {"text": "c"}\n]\n'
    const result = await readText('a.json', content)
    expect(result.records.map((r) => [r.line, r.fileLine])).toEqual([
      [1, 2],
      [4, 5],
    ])
    expect(described(result)).toEqual(['record 2 (line 3): "text" is empty', 'record 3 (line 4): the record is not valid JSON: expected double-quoted property name'])
  })

  it('holds records spread over many lines, and strings with brackets and escapes', async () => {
    const records = [{ text: 'a ] b } c , d' }, { text: 'quote " and \\ backslash \n newline' }, { messages: [{ role: 'user', content: '[' }] }]
    const result = await readText('a.json', JSON.stringify(records, null, 4), { format: 'text' })
    expect(result.records.map((r) => r.record)).toEqual([
      { kind: 'text', text: 'a ] b } c , d' },
      { kind: 'text', text: 'quote " and \\ backslash \n newline' },
    ])
    expect(described(result)).toEqual(['record 3 (line 8): "text" is missing (this record looks like messages; one file must use one format)'])
  })

  it('tolerates a comma after the last record; reports two commas in a row', async () => {
    expect((await readText('a.json', '[{"text":"a"},]')).problems).toEqual([])
    const result = await readText('a.json', '[{"text":"a"},,{"text":"b"}]')
    expect(described(result)).toEqual(['record 2 (line 1): the record is missing: there are two commas in a row'])
    expect(result.records.map((r) => r.line)).toEqual([1, 3])
  })

  it('reports an array that is never closed, and text after its end', async () => {
    const open = await readText('a.json', '[\n{"text":"a"},\n{"text":"b"\n')
    expect(open.records.map((r) => r.line)).toEqual([1])
    expect(described(open)).toEqual(['record 2 (line 3): the JSON array is never closed: the file ends inside record 2 before the final "]" (is the file cut short?)'])
    const after = await readText('a.json', '[{"text":"a"}]\n[{"text":"b"}]\n')
    expect(described(after)).toEqual(['line 2: there is more text after the "]" that closes the array of records; remove it or move the records inside the array'])
  })

  it('recovers after a string that is not closed on its line', async () => {
    const result = await readText('a.json', '[\n{"text": "a},\n{"text": "b"}\n]')
    expect(result.records.map((r) => r.line)).toEqual([2])
    expect(described(result)).toEqual([expect.stringMatching(/^record 1 \(line 2\): the record is not valid JSON: a text in quotes on line 2 is not closed/)])
  })

  it('blames invalid UTF-8 on the record that holds it', async () => {
    const bytes = Buffer.concat([Buffer.from('[{"text":"a"}, {"text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}, {"text":"c"}]')])
    const result = await readText('a.json', bytes)
    expect(result.records.map((r) => r.line)).toEqual([1, 3])
    expect(described(result)).toEqual([expect.stringMatching(/^record 2 \(line 1\): the record is not valid JSON: it is not valid UTF-8 text/)])
  })

  it('reads an empty array as no records', async () => {
    const result = await readText('a.json', '[]')
    expect(result.records).toEqual([])
    expect(result.problems).toEqual([])
  })
})

describe('files that are not datasets', () => {
  it.each([
    ['empty.jsonl', new Uint8Array(0), /is an empty file, not a dataset/],
    ['blank.jsonl', '\n\n  \n', /empty file \(only blank lines\)/],
    ['book.xlsx', Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.from('....xl/workbook.xml')]), /spreadsheet workbook.*CSV UTF-8/],
    ['a.zip', Buffer.from('PK\x03\x04....data/train.jsonl'), /ZIP archive, not a dataset: unzip it/],
    ['old.doc', Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0]), /a Word document, not a dataset of examples/],
    ['a.rtf', '{\\rtf1\\ansi Hello}', /an RTF document/],
    ['u16.jsonl', Buffer.from('\ufeff{"text":"a"}', 'utf16le'), /saved as UTF-16.*save it as UTF-8/],
    ['a.bin', Buffer.from([1, 2, 0, 3]), /binary file/],
    ['page.html', '<!DOCTYPE html><html><body>Hi</body></html>', /a web page \(HTML\), not a dataset of examples/],
  ])('%s', async (name, content, message) => {
    const result = await readText(name, content)
    expect(result.records).toEqual([])
    expect(result.problems).toHaveLength(1)
    expect(result.problems[0]!.unit).toBe('file')
    expect(result.problems[0]!.message).toMatch(message)
  })

  it('the same from bytes in memory', () => {
    const result = readDatasetBytes(new TextEncoder().encode('Dear team,\nthe launch is on Monday.\n'), 'memo.txt')
    expect(result).toMatchObject({ fileKind: 'document', document: 'text' })
    const data = readDatasetBytes(new TextEncoder().encode('{"text":"a"}\n'), 'memo.txt')
    expect(data.records).toHaveLength(1)
  })
})
