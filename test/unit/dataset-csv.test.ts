// The CSV reader (RFC 4180, written for Attune) and the column → role mapping of CSV datasets.
import { describe, expect, it } from 'vitest'
import { CsvReader, parseCsvText, sniffDelimiter } from '../../src-main/domain/dataset/csv'
import { csvRecord, planCsv } from '../../src-main/domain/dataset/csv-mapping'
import { readDatasetBytes } from '../../src-main/domain/dataset/read'
import { describeProblem } from '../../src-main/domain/dataset/types'

const cells = (text: string) => parseCsvText(text).map((row) => row.cells)
const read = (text: string, options = {}) => readDatasetBytes(new TextEncoder().encode(text), 'data.csv', options)

describe('CSV reading (RFC 4180)', () => {
  it('splits plain values', () => {
    expect(cells('a,b,c\n1,2,3\n')).toEqual([
      ['a', 'b', 'c'],
      ['1', '2', '3'],
    ])
  })

  it('keeps empty values, leading and trailing', () => {
    expect(cells('a,b,c\n,,\n1,,\n,,3')).toEqual([
      ['a', 'b', 'c'],
      ['', '', ''],
      ['1', '', ''],
      ['', '', '3'],
    ])
  })

  it('reads quoted values with delimiters, doubled quotes and line breaks', () => {
    expect(cells('a,b\n"x, y","say ""hi"""\n"two\nlines","three\r\nlines"\n"",""""\n')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['two\nlines', 'three\nlines'],
      ['', '"'],
    ])
  })

  it('numbers rows as a spreadsheet does, and knows the line each starts on', () => {
    const rows = parseCsvText('h\n"a\nb\nc"\nd\n')
    expect(rows.map((row) => [row.row, row.line])).toEqual([
      [1, 1],
      [2, 2],
      [3, 5],
    ])
  })

  it('keeps a quote inside an unquoted value as it is', () => {
    expect(cells('a,b\n5" screen,it\'s\n')).toEqual([
      ['a', 'b'],
      ['5" screen', "it's"],
    ])
  })

  it('flags text after a closing quote', () => {
    const rows = parseCsvText('a,b\n"x"y,z\n')
    expect(rows[1]!.problem).toBe('value 1 has text after its closing quote; a quote inside a quoted value must be doubled ("")')
    expect(rows[1]!.cells).toEqual(['x"y', 'z'])
  })

  it('flags a quoted value that is never closed', () => {
    const rows = parseCsvText('a,b\n1,2\n3,"four\nfive\n')
    expect(rows).toHaveLength(3)
    expect(rows[2]).toMatchObject({ row: 3, line: 3, problem: 'the quoted value that starts on line 3 is never closed: a closing " is missing (is the file cut short?)' })
  })

  it('marks blank lines', () => {
    expect(parseCsvText('a\n\n  \nb').map((row) => row.blank)).toEqual([false, true, true, false])
  })

  it('keeps blank lines inside quotes', () => {
    expect(cells('a\n"x\n\ny"\n')).toEqual([['a'], ['x\n\ny']])
  })

  it('finds the delimiter in the header: comma, semicolon or tab, not inside quotes', () => {
    expect(sniffDelimiter('a,b,c')).toBe(',')
    expect(sniffDelimiter('a;b;c')).toBe(';')
    expect(sniffDelimiter('a\tb')).toBe('\t')
    expect(sniffDelimiter('"a;b;c",d')).toBe(',')
    expect(sniffDelimiter('text')).toBe(',')
    expect(cells('a;b\n"1;2";3\n')).toEqual([
      ['a', 'b'],
      ['1;2', '3'],
    ])
  })

  it('does not care where a line is split into chunks', () => {
    const reader = new CsvReader(',')
    const rows = [
      ...reader.push({ number: 1, text: 'a,b', validUtf8: true }),
      ...reader.push({ number: 2, text: '"1', validUtf8: true }),
      ...reader.push({ number: 3, text: '2",3', validUtf8: true }),
      ...reader.end(),
    ]
    expect(rows.map((row) => row.cells)).toEqual([
      ['a', 'b'],
      ['1\n2', '3'],
    ])
  })
})

describe('CSV columns → roles', () => {
  it.each([
    [['text'], 'text', { text: 'text' }],
    [['Prompt', 'Completion'], 'prompt-completion', { Prompt: 'prompt', Completion: 'completion' }],
    [['instruction', 'input', 'output'], 'alpaca', { instruction: 'instruction', input: 'input', output: 'output' }],
    [['instruction', 'context', 'response', 'category'], 'alpaca', { instruction: 'instruction', context: 'input', response: 'output' }],
    [['system', 'user', 'assistant'], 'messages', { system: 'system', user: 'user', assistant: 'assistant' }],
    [['Question', 'Answer', 'id'], 'messages', { Question: 'user', Answer: 'assistant' }],
    [['system_prompt', 'Human', 'GPT'], 'messages', { system_prompt: 'system', Human: 'user', GPT: 'assistant' }],
  ])('finds %j by name', (header, format, mapping) => {
    expect(planCsv(header)).toMatchObject({ ok: true, format, mapping })
  })

  it.each([
    [['a', 'b'], {}, /no column says what it holds: name them text; .* \(the header has "a", "b"\)/],
    [['prompt', 'answer'], {}, /the columns mix two formats: "prompt" \(prompt\), "answer" \(assistant\)/],
    [['instruction', 'input'], {}, /alpaca needs instruction and output columns, and no column is output/],
    [['prompt', 'completion', 'prompt'], {}, /two columns named "prompt" \(columns 1 and 3\)/],
    [['text'], { wanted: 'alpaca' as const }, /--format alpaca does not fit the columns: they are text \("text" → text\)/],
  ])('explains a header it cannot use: %j', (header, options, message) => {
    const plan = planCsv(header, options)
    expect(plan.ok).toBe(false)
    expect(plan.ok ? '' : plan.message).toMatch(message)
  })

  it('takes an explicit mapping (the app’s column-mapping step)', () => {
    const plan = planCsv(['q', 'a', 'notes'], { mapping: { q: 'user', a: 'assistant', notes: 'ignore' } })
    expect(plan).toMatchObject({ ok: true, format: 'messages', mapping: { q: 'user', a: 'assistant' } })
    expect(planCsv(['q'], { mapping: { x: 'user' } })).toMatchObject({ ok: false, message: expect.stringContaining('names a column "x" that the header does not have') })
    expect(planCsv(['q', 'a'], { mapping: { q: 'user', a: 'user' } })).toMatchObject({ ok: false, message: expect.stringContaining('both mapped to user') })
    expect(planCsv(['q'], { mapping: { q: 'bot' as never } })).toMatchObject({ ok: false, message: expect.stringContaining('the role "bot"') })
  })

  it('turns a row into a record, naming empty required columns', () => {
    const plan = planCsv(['instruction', 'input', 'output'])
    if (!plan.ok) throw new Error(plan.message)
    expect(csvRecord(['Add.', '', '2'], plan, 3)).toEqual({ ok: true, record: { kind: 'messages', messages: [{ role: 'user', content: 'Add.' }, { role: 'assistant', content: '2' }] } })
    expect(csvRecord(['Add.', '1+1', ' '], plan, 3)).toEqual({ ok: false, issues: [{ field: 'output', message: 'column "output" (output) is empty' }] })
    expect(csvRecord(['Add.', '1+1'], plan, 3)).toMatchObject({ ok: false, issues: [{ message: expect.stringMatching(/^the row has 2 values but the header has 3 columns/) }] })
  })
})

describe('CSV datasets', () => {
  it('reads every mapped format', () => {
    expect(read('text\nhello\n').records[0]!.record).toEqual({ kind: 'text', text: 'hello' })
    expect(read('prompt,completion\nQ,A\n').records[0]!.record).toEqual({ kind: 'prompt-completion', prompt: 'Q', completion: 'A' })
    expect(read('system,user,assistant\n,hi,hello\nBe nice.,hi,hello\n').records.map((r) => r.record)).toEqual([
      { kind: 'messages', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
      {
        kind: 'messages',
        messages: [
          { role: 'system', content: 'Be nice.' },
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
        ],
      },
    ])
  })

  it('names the row of every problem, with the line when they differ', () => {
    const result = read('prompt,completion\n"multi\nline",ok\nQ,\n\nQ,A,extra\n"bad"x,A\nfine,yes')
    expect(result.records.map((r) => [r.line, r.fileLine])).toEqual([
      [2, 2],
      [7, 8],
    ])
    expect(result.problems.map(describeProblem)).toEqual([
      'row 3 (line 4): column "completion" (completion) is empty',
      'row 4 (line 5): the row is blank; each row must hold one record (remove the empty line)',
      expect.stringMatching(/^row 5 \(line 6\): the row has 3 values but the header has 2 columns/),
      'row 6 (line 7): value 1 has text after its closing quote; a quote inside a quoted value must be doubled ("")',
    ])
  })

  it('makes a header it cannot map a problem of row 1, and reads no record', () => {
    const result = read('foo,bar\n1,2\n')
    expect(result.records).toEqual([])
    expect(result.problems.map(describeProblem)).toEqual([expect.stringMatching(/^row 1: the header row can't be used: no column says what it holds/)])
    expect(result.format).toBe('csv')
    expect(result.recordFormat).toBeNull()
  })

  it('reads a UTF-8 BOM and CRLF (Excel’s "CSV UTF-8")', () => {
    const result = readDatasetBytes(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('text\r\n"a\r\nb"\r\nc\r\n')]), 'x.csv')
    expect(result.records.map((r) => r.record)).toEqual([
      { kind: 'text', text: 'a\nb' },
      { kind: 'text', text: 'c' },
    ])
    expect(result.csv?.header).toEqual(['text'])
  })

  it('reports invalid UTF-8 on its row', () => {
    const result = readDatasetBytes(new Uint8Array([...new TextEncoder().encode('text\nok\n'), 0x63, 0xe9, 0x0a, ...new TextEncoder().encode('fine\n')]), 'x.csv')
    expect(result.records.map((r) => r.line)).toEqual([2, 4])
    expect(result.problems.map(describeProblem)).toEqual([expect.stringMatching(/^row 3: line 3 is not valid UTF-8 text: save the file as UTF-8 \(in Excel: "CSV UTF-8"\)/)])
  })

  it('reads a .tsv with tabs', () => {
    const result = readDatasetBytes(new TextEncoder().encode('prompt\tcompletion\na, b\tc\n'), 'x.tsv')
    expect(result.records[0]!.record).toEqual({ kind: 'prompt-completion', prompt: 'a, b', completion: 'c' })
  })

  it('--format picks the reading of the columns, and an explicit mapping wins over names', () => {
    expect(read('instruction,output\na,b\n', { format: 'alpaca' }).recordFormat).toBe('alpaca')
    expect(read('text\nhello\n', { format: 'prompt-completion' }).problems.map(describeProblem)).toEqual([expect.stringContaining('--format prompt-completion does not fit the columns')])
    const mapped = read('body,title\nhello,x\n', { mapping: { body: 'text' } })
    expect(mapped.records[0]!.record).toEqual({ kind: 'text', text: 'hello' })
  })

  it('an empty CSV has no header', () => {
    const result = read('\n')
    expect(result.problems).toHaveLength(1)
  })
})
