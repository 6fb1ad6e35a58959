using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages;

/// <summary>The staged changes: shown as a diff, committed (with a comment) or cleared, as `postern commit` / `clearchanges` do.</summary>
public sealed class ChangesModel(WebContext web) : PageModel
{
    public IReadOnlyList<string> Diff { get; private set; } = [];

    public void OnGet() => Diff = web.Config((s, _) => s.HasStagedChanges ? s.Diff(0, null) : ["(no uncommitted changes)"]);

    public IActionResult OnPostCommit(string? comment, string? returnTo)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        var text = (comment ?? "").Trim();
        if (text.Length > 200 || text.Any(char.IsControl)) { TempData["Error"] = "A comment has at most 200 characters and no control characters."; return Back(returnTo); }
        try
        {
            var version = web.Config((s, _) => s.Commit(text, WebContext.Who(User)));
            web.Audit(User, $"committed configuration version {version.Number}{(text.Length > 0 ? $": {text}" : "")}");
            TempData["Notice"] = $"Changes committed as version {version.Number}. The running gateway applies them within a second or two.";
        }
        catch (ConfigException e)
        {
            TempData["Error"] = "The changes were not committed:\n" + e.Message;
        }
        return Back(returnTo);
    }

    public IActionResult OnPostClear(string? returnTo)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        web.Config((s, _) => { s.ClearChanges(); return 0; });
        web.Audit(User, "cleared the staged changes");
        TempData["Notice"] = "The uncommitted changes were discarded.";
        return Back(returnTo);
    }

    /// <summary>Back to the page the form was on (a local path only: never an open redirect).</summary>
    private IActionResult Back(string? returnTo) =>
        LocalRedirect(returnTo is { Length: > 0 } r && r.StartsWith('/') && !r.StartsWith("//", StringComparison.Ordinal) && !r.Contains('\\') ? r : "/");
}
