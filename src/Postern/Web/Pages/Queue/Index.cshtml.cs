using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;
using Postern.Queue;

namespace Postern.Web.Pages.Queue;

/// <summary>Monitor &gt; Queue: messages and recipients, retry, delete, suspend and resume delivery (operators and administrators).</summary>
public sealed class QueueModel(WebContext web) : PageModel
{
    public const int PageSize = 200;
    public IReadOnlyList<QueuedMessage> Messages { get; private set; } = [];
    public bool Truncated { get; private set; }
    public (int Messages, int Recipients, DateTimeOffset? Oldest) Stats { get; private set; }
    public IReadOnlyList<OperatorHold> Holds { get; private set; } = [];

    private async Task<T> WithAsync<T>(Func<QueueService, Task<T>> action)
    {
        using var versions = Cluster.Stores.Config(web.Startup);
        return await action(new QueueService(web.Queue, versions, web.Live));
    }

    public async Task OnGetAsync()
    {
        await WithAsync(async q =>
        {
            var all = await q.ListAsync();
            Messages = all.Take(PageSize).ToList();
            Truncated = all.Count > PageSize;
            Stats = await q.StatsAsync();
            Holds = q.Holds();
            return 0;
        });
    }

    /// <summary>A peer's reply, shortened for the table (Razor escapes it).</summary>
    public string Short(string? text) => text is null ? "" : text.Length > 160 ? text[..160] + "…" : text;

    public Task<IActionResult> OnPostRetryAsync(long? mid) => Act(async q =>
    {
        var n = await q.RetryAsync(mid);
        return $"{n} recipient(s) {(mid is null ? "" : $"of MID {mid} ")}are due now.";
    });

    public Task<IActionResult> OnPostDeleteAsync(long mid) => Act(async q =>
    {
        await q.DeleteAsync(mid);
        return $"MID {mid} deleted (no bounce was sent).";
    });

    public Task<IActionResult> OnPostSuspendAsync(string? domain) => Act(q =>
    {
        var target = q.SetDeliveryHold(domain, on: true, WebContext.Who(User));
        return Task.FromResult($"Delivery to {(target == QueueService.AllDomains ? "all domains" : target)} suspended.");
    });

    public Task<IActionResult> OnPostResumeAsync(string kind, string target) => Act(q =>
    {
        var name = kind == "listener" ? q.SetListenerHold(target, on: false, WebContext.Who(User)) : q.SetDeliveryHold(target, on: false, WebContext.Who(User));
        return Task.FromResult($"{(kind == "listener" ? $"Listener {name}" : $"Delivery to {(name == QueueService.AllDomains ? "all domains" : name)}")} resumed.");
    });

    private async Task<IActionResult> Act(Func<QueueService, Task<string>> action)
    {
        if (!User.IsInRole(WebServer.AdministratorRole) && !User.IsInRole(WebServer.OperatorRole)) return Forbid();
        try
        {
            var said = await WithAsync(action);
            web.Audit(User, said);
            TempData["Notice"] = said + " The running gateway takes it within a second.";
        }
        catch (Exception e) when (e is ConfigException or NotInQueueException) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }
}
