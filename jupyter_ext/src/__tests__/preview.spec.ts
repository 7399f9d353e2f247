import { parseCsv, previewOf } from '../datasets/preview';

describe('parseCsv', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks', () => {
    const text = 'id,"name, full",note\r\n1,"Ann ""A"" B","two\nlines"\n2,,\n';
    expect(parseCsv(text)).toEqual([
      ['id', 'name, full', 'note'],
      ['1', 'Ann "A" B', 'two\nlines'],
      ['2', '', '']
    ]);
  });

  it('keeps a last line without its line break', () => {
    expect(parseCsv('a,b\n1,2')).toEqual([
      ['a', 'b'],
      ['1', '2']
    ]);
  });
});

describe('previewOf', () => {
  it('splits the header from the rows and says how the read ended', () => {
    expect(previewOf('a\n1\n', 'limit')).toEqual({
      columns: ['a'],
      rows: [['1']],
      stoppedBy: 'limit'
    });
    expect(previewOf('', null)).toEqual({
      columns: [],
      rows: [],
      stoppedBy: ''
    });
  });
});
