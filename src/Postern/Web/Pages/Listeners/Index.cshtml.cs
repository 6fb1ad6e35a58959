using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.Listeners;

/// <summary>Network &gt; Listeners: the listeners of the working configuration (staged changes included), delete.</summary>
public sealed class ListenersModel(WebContext web) : PageModel
{
    public IReadOnlyList<ListenerSettings> Listeners { get; private set; } = [];
    /// <summary>Listeners the gateway bound at its start that the working configuration no longer has: served until the next start.</summary>
    public IReadOnlyList<string> Removed { get; private set; } = [];

    public void OnGet()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        Listeners = working.Listeners;
        Removed = web.Startup.Listeners.Where(b => working.Listeners.All(l => !l.Name.Equals(b.Name, StringComparison.OrdinalIgnoreCase))).Select(b => b.Name).ToList();
    }

    /// <summary>What of this listener waits for a restart: the gateway binds listeners only when it starts (as ConfigWatcher says).</summary>
    public string? RestartNote(ListenerSettings listener) => ListenerPages.RestartNote(web.Startup, listener);

    public IActionResult OnPostDelete(string name)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            web.Config((s, fallback) => { new ListenerService(s, fallback, who: WebContext.Who(User)).Delete(name); return 0; });
            web.Audit(User, $"deleted listener {name} (staged)");
            TempData["Notice"] = $"Listener {name} deleted. Commit to apply it; a running gateway keeps serving it until its next start.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }
}

/// <summary>What the listener pages share.</summary>
public static class ListenerPages
{
    public static string RestartNote(PosternConfig startup, ListenerSettings listener)
    {
        var bound = startup.Listeners.FirstOrDefault(b => b.Name.Equals(listener.Name, StringComparison.OrdinalIgnoreCase));
        if (bound is null) return "new: bound at the next start";
        // Port 0 (any free port) is what was asked at start, whatever port the kernel gave.
        return bound.Address != listener.Address || bound.Port != listener.Port ? $"moves to {listener.Address}:{listener.Port} at the next start" : "";
    }

    /// <summary>The certificate a listener presents for STARTTLS, as the dialogue names it.</summary>
    public static string CertificateName(ListenerSettings l) =>
        l.Certificate ?? (l.CertificateFile is not null ? $"PEM files ({l.CertificateFile})" : "Demo certificate");
}
