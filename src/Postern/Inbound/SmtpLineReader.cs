namespace Postern.Inbound;

/// <summary>What one call to <see cref="SmtpLineReader.ReadLineAsync"/> found.</summary>
public readonly record struct SmtpLine(int Start, int Length, bool TooLong, bool BareLineFeed, bool BareCarriageReturn, bool EndOfStream)
{
    /// <summary>True when the line was not cleanly CRLF-terminated ASCII framing (smuggling defence).</summary>
    public bool HasBareNewline => BareLineFeed || BareCarriageReturn;
}

/// <summary>
/// Reads CRLF-framed lines from a stream without ever holding more than the limit of one
/// line: longer lines are reported and discarded. The stream can be swapped (STARTTLS)
/// only when nothing is buffered. The buffer starts small (an idle session costs little)
/// and grows from the shared pool up to the maximum while long lines or message data need
/// it; <see cref="Trim"/> gives the large buffer back between messages.
/// </summary>
public sealed class SmtpLineReader : IDisposable
{
    private const int SmallSize = 1024;
    private Stream _stream;
    private byte[] _buffer;
    private bool _pooled;
    private readonly int _maxSize;
    private int _start;
    private int _end;

    public SmtpLineReader(Stream stream, int maxBufferSize = 65536 + 1024)
    {
        _stream = stream;
        _maxSize = Math.Max(SmallSize, maxBufferSize);
        _buffer = new byte[SmallSize];
    }

    /// <summary>Grows the buffer to at least size bytes (capped at the maximum), keeping what is buffered.</summary>
    public void Reserve(int size)
    {
        size = Math.Min(size, _maxSize);
        if (_buffer.Length >= size) return;
        var bigger = System.Buffers.ArrayPool<byte>.Shared.Rent(size);
        System.Buffer.BlockCopy(_buffer, _start, bigger, 0, _end - _start);
        Release();
        _buffer = bigger;
        _pooled = true;
        _end -= _start;
        _start = 0;
    }

    /// <summary>Returns a grown buffer to the pool when what is buffered fits a small one.</summary>
    public void Trim()
    {
        if (!_pooled || Buffered > SmallSize) return;
        var small = new byte[SmallSize];
        System.Buffer.BlockCopy(_buffer, _start, small, 0, _end - _start);
        Release();
        _buffer = small;
        _end -= _start;
        _start = 0;
    }

    private void Release()
    {
        if (_pooled) System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
        _pooled = false;
    }

    public void Dispose()
    {
        Release();
        _buffer = [];
        _start = _end = 0;
    }

    public byte[] Buffer => _buffer;
    public int Buffered => _end - _start;

    public void ReplaceStream(Stream stream)
    {
        if (Buffered != 0) throw new InvalidOperationException("data is buffered; cannot switch streams");
        _stream = stream;
        _start = _end = 0;
    }

    /// <summary>
    /// Reads one line. The returned Start/Length index into <see cref="Buffer"/> (valid until
    /// the next call) and exclude the line ending. A line longer than maxLength (ending
    /// included) is consumed up to its LF and reported as TooLong with no content.
    /// </summary>
    public async ValueTask<SmtpLine> ReadLineAsync(int maxLength, CancellationToken ct)
    {
        var tooLong = false;
        var scanFrom = _start;
        while (true)
        {
            var lf = Array.IndexOf(_buffer, (byte)'\n', scanFrom, _end - scanFrom);
            if (lf >= 0)
            {
                var lineStart = _start;
                var contentEnd = lf;
                var bareLf = true;
                if (contentEnd > lineStart && _buffer[contentEnd - 1] == '\r') { contentEnd--; bareLf = false; }
                _start = lf + 1;
                if (tooLong || lf + 1 - lineStart > maxLength)
                    return new SmtpLine(lineStart, 0, true, bareLf, false, false);
                var bareCr = Array.IndexOf(_buffer, (byte)'\r', lineStart, contentEnd - lineStart) >= 0;
                return new SmtpLine(lineStart, contentEnd - lineStart, false, bareLf, bareCr, false);
            }
            if (_end - _start >= maxLength)
            {
                // Over the limit with no LF yet: drop what we have, keep looking for the LF.
                tooLong = true;
                var keepCr = _buffer[_end - 1] == '\r';
                _start = _end = 0;
                if (keepCr) _buffer[_end++] = (byte)'\r';
            }
            else if (_start == _end) { _start = _end = 0; }
            else if (_end == _buffer.Length)
            {
                if (_start > 0)
                {
                    System.Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                // A line longer than the buffer (but within the limit) needs a bigger one.
                if (_buffer.Length - _end < _buffer.Length / 4 && _buffer.Length < _maxSize) Reserve(Math.Max(_buffer.Length * 2, maxLength + 2));
            }
            scanFrom = _end;
            var n = await _stream.ReadAsync(_buffer.AsMemory(_end, _buffer.Length - _end), ct).ConfigureAwait(false);
            if (n == 0) return new SmtpLine(0, 0, tooLong, false, false, true);
            _end += n;
        }
    }

    /// <summary>
    /// Takes one whole line already in the buffer without waiting (message data arrives many
    /// lines per read: no await and no deadline reset per line). False when no complete line
    /// within maxLength is buffered; ReadLineAsync then reads on.
    /// </summary>
    public bool TryReadBufferedLine(int maxLength, out SmtpLine line)
    {
        var buffered = _buffer.AsSpan(_start, _end - _start);
        var lf = buffered.IndexOf((byte)'\n');
        if (lf < 0 || lf + 1 > maxLength) { line = default; return false; }
        var lineStart = _start;
        var contentLength = lf;
        var bareLf = true;
        if (contentLength > 0 && buffered[contentLength - 1] == '\r') { contentLength--; bareLf = false; }
        _start += lf + 1;
        var bareCr = buffered[..contentLength].Contains((byte)'\r');
        line = new SmtpLine(lineStart, contentLength, false, bareLf, bareCr, false);
        return true;
    }

    /// <summary>Copies exactly count bytes (BDAT) to sink; returns false at end of stream.</summary>
    public async ValueTask<bool> ReadExactAsync(long count, Action<ReadOnlySpan<byte>> sink, CancellationToken ct)
    {
        while (count > 0)
        {
            if (_start == _end)
            {
                _start = _end = 0;
                var n = await _stream.ReadAsync(_buffer.AsMemory(0, _buffer.Length), ct).ConfigureAwait(false);
                if (n == 0) return false;
                _end = n;
            }
            var take = (int)Math.Min(count, _end - _start);
            sink(_buffer.AsSpan(_start, take));
            _start += take;
            count -= take;
        }
        return true;
    }
}
