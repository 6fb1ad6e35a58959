using System.Buffers;

namespace Postern.Inbound;

/// <summary>
/// A message as it arrives: pooled memory that grows by doubling, with room kept in front
/// for the Received: header, so the queued form (header + data) is never copied again and
/// large messages do not each leave three large-object-heap arrays behind.
/// </summary>
public sealed class MessageBuffer : IDisposable
{
    /// <summary>Room in front for the trace header Postern adds (a Received: line is about 250 bytes).</summary>
    public const int Headroom = 1024;
    private byte[] _array;
    private int _end = Headroom;
    private int _start = Headroom;

    public MessageBuffer(int initialCapacity = 16 * 1024) => _array = ArrayPool<byte>.Shared.Rent(Headroom + initialCapacity);

    /// <summary>Bytes of message data (without a prepended header).</summary>
    public int Length => _end - Headroom;

    public void Write(ReadOnlySpan<byte> data)
    {
        if (_end + data.Length > _array.Length) Grow(_end + data.Length);
        data.CopyTo(_array.AsSpan(_end));
        _end += data.Length;
    }

    private void Grow(int needed)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, _array.Length * 2));
        Buffer.BlockCopy(_array, 0, bigger, 0, _end);
        ArrayPool<byte>.Shared.Return(_array);
        _array = bigger;
    }

    /// <summary>The data as received (valid until the next write or Dispose).</summary>
    public ReadOnlyMemory<byte> Data => _array.AsMemory(Headroom, _end - Headroom);

    /// <summary>Puts header in front of the data (once) and returns header + data; copies only when the header is larger than the headroom.</summary>
    public ReadOnlyMemory<byte> WithHeader(ReadOnlySpan<byte> header)
    {
        if (_start != Headroom) throw new InvalidOperationException("a header was already added");
        if (header.Length > Headroom)
        {
            var whole = new byte[header.Length + Length];
            header.CopyTo(whole);
            Data.Span.CopyTo(whole.AsSpan(header.Length));
            return whole;
        }
        _start = Headroom - header.Length;
        header.CopyTo(_array.AsSpan(_start));
        return _array.AsMemory(_start, _end - _start);
    }

    public void Dispose()
    {
        if (_array.Length == 0) return;
        ArrayPool<byte>.Shared.Return(_array);
        _array = [];
        _start = _end = Headroom;
    }
}
