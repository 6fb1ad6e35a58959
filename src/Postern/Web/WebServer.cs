using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Postern.Admin;
using Postern.Observability;
using Postern.Queue;
using Postern.Security;

namespace Postern.Web;

/// <summary>
/// What the pages work with: the same application services and stores as the CLI, the
/// configuration in force, the event stream (for audit lines) and the running gateway's counters.
/// </summary>
public sealed class WebContext(string dataDirectory, PosternConfig startup, Func<PosternConfig> live, MailEventStream events,
    MailCounters counters, TrafficHistory traffic, IQueueStore queue, CertificateProvider certificates, WebUserService users)
{
    public string DataDirectory { get; } = dataDirectory;
    public PosternConfig Startup { get; } = startup;
    public PosternConfig Live => live();
    public MailEventStream Events { get; } = events;
    public MailCounters Counters { get; } = counters;
    public TrafficHistory Traffic { get; } = traffic;
    public IQueueStore Queue { get; } = queue;
    public CertificateProvider Certificates { get; } = certificates;
    public WebUserService Users { get; } = users;
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    /// <summary>TLS reports received from other organisations; null outside a running gateway.</summary>
    public TlsRptIntake? TlsReports { get; init; }
    /// <summary>The sending side's counts and reports (TLS reporting of our outbound sessions).</summary>
    public ITlsRptStore? SentReports { get; init; }

    /// <summary>The versioned configuration, as the CLI sees it (commit checks the machine too).</summary>
    public T Config<T>(Func<ConfigService, PosternConfig, T> action)
    {
        using var store = Cluster.Stores.Config(Startup);
        return action(Cluster.Stores.ConfigService(store, Startup, c => ConfigPreflight.Problems(c, checkBind: false)), Startup);
    }

    public bool HasStagedChanges => Config((s, _) => s.HasStagedChanges);

    /// <summary>The certificate service over the versioned configuration and the certificate store.</summary>
    public T WithCertificates<T>(Func<CertificateService, T> action) => Config((service, fallback) =>
    {
        using var store = CertificateStore.Open(Startup);
        return action(new CertificateService(service, fallback, store));
    });

    /// <summary>Who a change is recorded as: the signed-in user, marked as coming from the web interface.</summary>
    public static string Who(ClaimsPrincipal user) => $"{user.Identity?.Name ?? "unknown"}@web";

    /// <summary>The audit line (mail log) for a change made in the web interface.</summary>
    public void Audit(ClaimsPrincipal user, string what) => Events.Publish(new OperatorAction($"web: {what}", Who(user)));
}

/// <summary>
/// The HTTPS administration interface: ASP.NET Core (Kestrel, Razor Pages) in the gateway's
/// process. Server-rendered pages, no script at all (the Content-Security-Policy says so),
/// embedded CSS; cookie sessions (Secure, HttpOnly, SameSite=Strict, idle timeout); antiforgery
/// on every form; every page needs a signed-in user, and configuration changes need an administrator.
/// </summary>
public sealed class WebServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IWebUserStore _users;

    public IPEndPoint Endpoint { get; }

    private WebServer(WebApplication app, IWebUserStore users, IPEndPoint endpoint)
    {
        _app = app;
        _users = users;
        Endpoint = endpoint;
    }

    public const string AdministratorRole = nameof(WebRole.Administrator);
    public const string OperatorRole = nameof(WebRole.Operator);
    /// <summary>Policies: changing configuration needs an administrator; queue actions an operator or administrator.</summary>
    public const string ChangeConfiguration = "ChangeConfiguration";
    public const string OperateQueue = "OperateQueue";

    public static async Task<WebServer> StartAsync(string dataDirectory, PosternConfig startup, Func<PosternConfig> live, MailEventStream events,
        MailCounters counters, TrafficHistory traffic, IQueueStore queue, CertificateProvider certificates, TextWriter? console,
        TlsRptIntake? tlsReports = null, ITlsRptStore? sentReports = null)
    {
        var settings = startup.Web;
        var webDirectory = Path.Combine(dataDirectory, "web");
        Directory.CreateDirectory(webDirectory);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(webDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var userStore = new SqliteWebUserStore(SqliteWebUserStore.PathFor(dataDirectory));
        var users = new WebUserService(userStore, () => DateTimeOffset.UtcNow, settings.MaxFailedLogins, settings.LockoutMinutes);
        var initialFile = Path.Combine(webDirectory, "initial-admin-password");
        if (users.CreateInitialAdministrator(initialFile) is { } password)
        {
            // Printed once, never logged: the mail log only says where it is.
            console?.WriteLine($"Web interface: initial administrator 'admin', password {password} (also in {initialFile}, mode 0600; change it with postern adminuser passwd admin)");
            events.Publish(new SystemNotice($"web interface: initial administrator 'admin' created; its password is in {initialFile}"));
        }
        var context = new WebContext(dataDirectory, startup, live, events, counters, traffic, queue, certificates, users) { TlsReports = tlsReports, SentReports = sentReports };

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(WebServer).Assembly.GetName().Name,
            ContentRootPath = webDirectory,
            Args = [],
        });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 10 * 1024 * 1024;
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(30);
            k.Limits.KeepAliveTimeout = TimeSpan.FromMinutes(2);
            k.Limits.MaxConcurrentConnections = 200;
            k.Listen(IPAddress.Parse(settings.Address), settings.Port, listen => listen.UseHttps(new TlsHandshakeCallbackOptions
            {
                HandshakeTimeout = TimeSpan.FromSeconds(10),
                // The certificate in force now: a commit that assigns another applies to the next handshake.
                OnConnection = _ => ValueTask.FromResult(new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = certificates.ForWeb().Context,
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                }),
            }));
        });
        var services = builder.Services;
        services.AddSingleton(context);
        services.AddDataProtection().PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(webDirectory, "keys"))).SetApplicationName("postern-web");
        services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme).AddCookie(o =>
        {
            o.Cookie.Name = "postern_session";
            o.Cookie.HttpOnly = true;
            o.Cookie.SecurePolicy = CookieSecurePolicy.Always;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.ExpireTimeSpan = TimeSpan.FromMinutes(settings.IdleTimeoutMinutes);
            o.SlidingExpiration = true;
            o.LoginPath = "/login";
            o.AccessDeniedPath = "/denied";
            // A deleted user, or one whose role changed, is signed out at the next request.
            o.Events.OnValidatePrincipal = c =>
            {
                var name = c.Principal?.Identity?.Name;
                var role = c.Principal?.FindFirst(ClaimTypes.Role)?.Value;
                var user = name is null ? null : userStore.Find(name);
                if (user is null || user.Role.ToString() != role) c.RejectPrincipal();
                return Task.CompletedTask;
            };
        });
        services.AddAuthorization(o =>
        {
            o.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
            o.AddPolicy(ChangeConfiguration, p => p.RequireRole(AdministratorRole));
            o.AddPolicy(OperateQueue, p => p.RequireRole(AdministratorRole, OperatorRole));
        });
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "postern_antiforgery";
            o.Cookie.SecurePolicy = CookieSecurePolicy.Always;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.FormFieldName = "__antiforgery";
        });
        services.AddRazorPages(o => o.RootDirectory = "/Web/Pages")
            // Empty form fields mean "inherit" here; the services say what is missing, in their words.
            .AddMvcOptions(o => o.SuppressImplicitRequiredAttributeForNonNullableReferenceTypes = true);

        var app = builder.Build();
        app.Use(async (http, next) =>
        {
            var h = http.Response.Headers;
            h.ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
            h.XContentTypeOptions = "nosniff";
            h.XFrameOptions = "DENY";
            h["Referrer-Policy"] = "no-referrer";
            h.StrictTransportSecurity = "max-age=31536000";
            h.CacheControl = "no-store";
            await next(http);
        });
        // A failure in a page is said in the mail log (escaped there) and answered with a plain 500, never a stack trace.
        app.Use(async (http, next) =>
        {
            try { await next(http); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                events.Publish(new SystemWarning($"web interface: {http.Request.Method} {http.Request.Path}: {e.GetType().Name}: {e.Message}"));
                if (http.Response.HasStarted) throw;
                http.Response.Clear();
                http.Response.StatusCode = StatusCodes.Status500InternalServerError;
                await http.Response.WriteAsync("The page failed; the mail log says why.");
            }
        });
        app.UseRouting();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapGet("/assets/site.css", () => Results.Text(Assets.SiteCss, "text/css; charset=utf-8")).AllowAnonymous();
        app.MapPost("/logout", async (HttpContext http) =>
        {
            await http.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return Results.Redirect("/login");
        });
        // RFC 8460 §5.2: TLS reports by HTTPS POST. Senders are other organisations' MTAs: no
        // login, no antiforgery (no cookie is used), and it answers only while enabled.
        app.MapPost("/tlsrpt", (Func<HttpContext, Task<IResult>>)(http => ReceiveTlsReportAsync(http, live, tlsReports, events))).AllowAnonymous();
        app.MapRazorPages();
        await app.StartAsync().ConfigureAwait(false);

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var endpoint = new IPEndPoint(IPAddress.Parse(settings.Address), new Uri(address).Port);
        events.Publish(new SystemNotice($"web interface on https://{endpoint}/"));
        if (certificates.ForWeb().IsDemo)
            events.Publish(new SystemWarning("the web interface uses the demo certificate; assign a real one (postern certconfig assign NAME --https, then commit)"));
        return new WebServer(app, userStore, endpoint);
    }

    /// <summary>
    /// POST /tlsrpt: 201 stored, 200 stored before (a retry), 400 not a report, 404 while
    /// tlsReporting.httpsEndpoint is off, 413 too large, 415 another media type. The body is read
    /// under a size cap and a deadline; the answer and the log quote the sender's text escaped.
    /// </summary>
    private static async Task<IResult> ReceiveTlsReportAsync(HttpContext http, Func<PosternConfig> live, TlsRptIntake? intake, MailEventStream events)
    {
        if (intake is null || !live().TlsReporting.HttpsEndpoint) return Results.NotFound();
        var type = (http.Request.ContentType ?? "").Split(';')[0].Trim().ToLowerInvariant();
        if (type is not ("application/tlsrpt+gzip" or "application/tlsrpt+json"))
            return Results.Text("Content-Type must be application/tlsrpt+gzip or application/tlsrpt+json\n", statusCode: StatusCodes.Status415UnsupportedMediaType);
        // The endpoint needs no login: at most a few reports are read at once (each may take 10 MB and 20 MB decompressed).
        if (!TlsReportIntakeGate.Wait(0))
        {
            http.Response.Headers.RetryAfter = "60";
            return Results.Text("too many reports are being received; try again later\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        }
        try { return await ReadTlsReportAsync(http, intake, events).ConfigureAwait(false); }
        finally { TlsReportIntakeGate.Release(); }
    }

    private static readonly SemaphoreSlim TlsReportIntakeGate = new(4, 4);

    private static async Task<IResult> ReadTlsReportAsync(HttpContext http, TlsRptIntake intake, MailEventStream events)
    {
        const int cap = TlsRptReader.MaxPayloadBytes;
        var tooLarge = Results.Text($"a report may be at most {cap} bytes\n", statusCode: StatusCodes.Status413PayloadTooLarge);
        if (http.Request.ContentLength > cap) return tooLarge;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        deadline.CancelAfter(TimeSpan.FromSeconds(60));
        using var body = new MemoryStream();
        var buffer = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = await http.Request.Body.ReadAsync(buffer, deadline.Token).ConfigureAwait(false)) > 0)
            {
                if (body.Length + n > cap) return tooLarge;
                body.Write(buffer, 0, n);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge) { return tooLarge; }
        catch (OperationCanceledException) when (!http.RequestAborted.IsCancellationRequested)
        {
            return Results.Text("the report did not arrive within 60 seconds\n", statusCode: StatusCodes.Status408RequestTimeout);
        }
        var from = http.Connection.RemoteIpAddress?.ToString() ?? "?";
        ParsedTlsReport parsed;
        try { parsed = TlsRptReader.Parse(body.GetBuffer().AsSpan(0, (int)body.Length)); }
        catch (TlsRptParseException e)
        {
            events.Publish(new SystemWarning($"TLS report by HTTPS from {from} refused: {e.Message}"));
            return Results.Text($"not a TLS report: {e.Message}\n", statusCode: StatusCodes.Status400BadRequest);
        }
        var stored = intake.Accept(parsed, new TlsRptOrigin($"https from {from}"));
        return stored.Duplicate
            ? Results.Text($"already stored as TLS report {stored.Id}\n", statusCode: StatusCodes.Status200OK)
            : Results.Text($"stored as TLS report {stored.Id}\n", statusCode: StatusCodes.Status201Created);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _users.Dispose();
    }
}

/// <summary>The stylesheet, embedded so nothing is served from disk or loaded from outside.</summary>
public static class Assets
{
    public static readonly string SiteCss = Read("site.css");

    private static string Read(string name)
    {
        using var stream = typeof(Assets).Assembly.GetManifestResourceStream("web/" + name) ?? throw new InvalidOperationException($"missing embedded asset {name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
