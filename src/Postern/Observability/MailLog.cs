using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Postern.Admin;

namespace Postern.Observability;

/// <summary>
/// Writes the appliance-style mail log: "Thu Sep 26 15:23:39 2024 Info: ..." into
/// logs/mail.current, rolled to mail.@YYYYMMDDTHHMMSS.s at midnight or when it grows past
/// the size limit. Writes happen on one background task, batched, flushed after each batch.
/// </summary>
public sealed class MailLog : IAsyncDisposable
{
    private readonly string _directory;
    private readonly long _maxBytes;
    private readonly bool _debug;
    /// <summary>Events waiting for the writer. Bounded: past this many, lines are counted as lost and a warning says how many.</summary>
    public const int Backlog = 1_000_000;
    private const int BatchBytes = 1 << 20;
    private readonly Channel<MailEvent> _channel = Channel.CreateBounded<MailEvent>(new BoundedChannelOptions(Backlog)
    {
        SingleReader = true, FullMode = BoundedChannelFullMode.Wait,
    });
    private long _dropped;
    private readonly Task _writer;
    private FileStream? _file;
    private DateTime _fileDay;

    public MailLog(string directory, MailLogSettings settings, Admin.LogLevel level)
    {
        _directory = directory;
        _maxBytes = settings.MaxFileBytes;
        _debug = level == Admin.LogLevel.Debug;
        Directory.CreateDirectory(directory);
        _writer = Task.Run(WriteLoop);
    }

    public string CurrentPath => Path.Combine(_directory, "mail.current");

    public void Attach(MailEventStream stream) => stream.Subscribe(e =>
    {
        if ((!e.IsDebug || _debug) && !_channel.Writer.TryWrite(e)) Interlocked.Increment(ref _dropped);
    });

    public static string Timestamp(DateTimeOffset t)
    {
        var local = t.ToLocalTime();
        // ctime(3) layout, as the appliance writes it: "Thu Sep  6 15:23:39 2024".
        return local.ToString("ddd MMM ", CultureInfo.InvariantCulture)
            + local.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2)
            + local.ToString(" HH:mm:ss yyyy", CultureInfo.InvariantCulture);
    }

    public static string Format(MailEvent e) => $"{Timestamp(e.Time)} {e.Level}: {Escape(e.LogText)}";

    /// <summary>
    /// One log line whatever a peer sent: control characters (CR, LF, ESC, NUL, C1 ...)
    /// become \xNN, so no line can be split, forged or turned into terminal escapes.
    /// </summary>
    public static string Escape(string text)
    {
        var i = 0;
        while (i < text.Length && !NeedsEscape(text[i])) i++;
        if (i == text.Length) return text;
        var sb = new StringBuilder(text.Length + 16).Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            var c = text[i];
            if (NeedsEscape(c)) sb.Append("\\x").Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static bool NeedsEscape(char c) => c < ' ' || c is >= '\u007F' and <= '\u009F' || c is '\u2028' or '\u2029';

    private async Task WriteLoop()
    {
        var sb = new StringBuilder();
        var reader = _channel.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            sb.Clear();
            DateTimeOffset last = default;
            // Check the cap before taking an event: one taken is one written.
            while (sb.Length < BatchBytes && reader.TryRead(out var e))
            {
                sb.Append(Format(e)).Append('\n');
                last = e.Time;
            }
            var dropped = Interlocked.Exchange(ref _dropped, 0);
            if (dropped > 0)
            {
                last = DateTimeOffset.Now;
                sb.Append(Format(new SystemWarning($"mail log backlog over {Backlog} events: {dropped} lines were lost"))).Append('\n');
            }
            try
            {
                var file = Open(last);
                var bytes = Encoding.UTF8.GetBytes(sb.ToString());
                await file.WriteAsync(bytes).ConfigureAwait(false);
                await file.FlushAsync().ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                Console.Error.WriteLine($"postern: mail log write failed: {ex.Message}");
            }
        }
        _file?.Dispose();
    }

    private FileStream Open(DateTimeOffset now)
    {
        var day = now.ToLocalTime().Date;
        if (_file is not null && (day != _fileDay || _file.Length >= _maxBytes))
        {
            _file.Dispose();
            _file = null;
            var rolled = Path.Combine(_directory, $"mail.@{DateTime.Now:yyyyMMdd'T'HHmmss}.s");
            if (File.Exists(rolled)) rolled += "." + Guid.NewGuid().ToString("N")[..6];
            File.Move(CurrentPath, rolled);
        }
        if (_file is null)
        {
            _file = new FileStream(CurrentPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            _fileDay = day;
        }
        return _file;
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
    }
}
