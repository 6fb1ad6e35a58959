using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Postern.Tests.Support;

/// <summary>Debian's chromium driven by Playwright, with a screenshot of every step under the test results folder.</summary>
public sealed class Browser : IAsyncDisposable
{
    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;
    private readonly string _folder;
    private int _shot;
    public IPage Page { get; }
    public string Base { get; }

    private Browser(IPlaywright playwright, IBrowser browser, IPage page, string folder, string baseUrl)
    {
        _playwright = playwright;
        _browser = browser;
        Page = page;
        _folder = folder;
        Base = baseUrl;
    }

    public static async Task<Browser> OpenAsync(IPEndPoint endpoint, string test)
    {
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-dev-shm-usage"],
        });
        // The gateway serves its demo certificate here: the browser is told to accept it, as an administrator would once.
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { IgnoreHTTPSErrors = true, ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        var page = await context.NewPageAsync();
        var results = Environment.GetEnvironmentVariable("POSTERN_TEST_RESULTS") is { Length: > 0 } r ? r : Path.Combine(AppContext.BaseDirectory, "TestResults");
        var folder = Path.Combine(results, "screenshots", test);
        Directory.CreateDirectory(folder);
        return new Browser(playwright, browser, page, folder, $"https://{endpoint}");
    }

    public async Task GoAsync(string path)
    {
        await Page.GotoAsync(Base + path);
        await ShotAsync(path.Trim('/').Replace('/', '-') is { Length: > 0 } n ? n : "overview");
    }

    public async Task ShotAsync(string name) =>
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(_folder, $"{++_shot:00}-{Regex.Replace(name, "[^a-zA-Z0-9-]", "_")}.png"), FullPage = true });

    public async Task LoginAsync(string name, string password)
    {
        await GoAsync("/login");
        await Page.FillAsync("#name", name);
        await Page.FillAsync("#password", password);
        await Page.ClickAsync("#login");
        await ShotAsync("after-login");
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }
}
