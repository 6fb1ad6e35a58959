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
    private readonly Channel<MailEvent> _channel = Channel.CreateUnbounded<MailEvent>(new UnboundedChannelOptions { SingleReader = true });
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
        if (!e.IsDebug || _debug) _channel.Writer.TryWrite(e);
    });

    public static string Timestamp(DateTimeOffset t)
    {
        var local = t.ToLocalTime();
        // ctime(3) layout, as the appliance writes it: "Thu Sep  6 15:23:39 2024".
        return local.ToString("ddd MMM ", CultureInfo.InvariantCulture)
            + local.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2)
            + local.ToString(" HH:mm:ss yyyy", CultureInfo.InvariantCulture);
    }

    public static string Format(MailEvent e) => $"{Timestamp(e.Time)} {e.Level}: {e.LogText}";

    private async Task WriteLoop()
    {
        var sb = new StringBuilder();
        var reader = _channel.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            sb.Clear();
            DateTimeOffset last = default;
            while (reader.TryRead(out var e) && sb.Length < 1 << 20)
            {
                // Keep CR/LF out of a log line whatever a peer sent.
                sb.Append(Format(e).Replace('\r', ' ').Replace('\n', ' ')).Append('\n');
                last = e.Time;
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
