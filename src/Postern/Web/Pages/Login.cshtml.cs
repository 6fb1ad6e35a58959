using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Postern.Web.Pages;

[Microsoft.AspNetCore.Authorization.AllowAnonymous]
public sealed class LoginModel(WebContext web) : PageModel
{
    [BindProperty] public string? Name { get; set; }
    [BindProperty] public string? Password { get; set; }
    [BindProperty(SupportsGet = true)] public string? ReturnUrl { get; set; }
    public string? Message { get; private set; }

    public void OnGet() { }

    public async Task<IActionResult> OnPostAsync()
    {
        var (result, user) = web.Users.Login((Name ?? "").Trim(), Password ?? "");
        var from = HttpContext.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        switch (result)
        {
            case LoginResult.Success:
                var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, user!.Name), new Claim(ClaimTypes.Role, user.Role.ToString())],
                    CookieAuthenticationDefaults.AuthenticationScheme);
                await HttpContext.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme, new ClaimsPrincipal(identity));
                web.Events.Publish(new Observability.SystemNotice($"web interface: {user.Name} logged in from {from}"));
                // Only a local path: never an open redirect.
                return LocalRedirect(ReturnUrl is { Length: > 1 } r && r.StartsWith('/') && !r.StartsWith("//", StringComparison.Ordinal) ? r : "/");
            case LoginResult.LockedOut:
                web.Events.Publish(new Observability.SystemWarning($"web interface: login refused for locked account {user!.Name} from {from}"));
                Message = $"This account is locked after too many failed logins. Try again after {user.LockedUntil?.UtcDateTime:u} or ask an administrator (postern adminuser passwd).";
                return Page();
            default:
                web.Events.Publish(new Observability.SystemWarning($"web interface: failed login for '{Name}' from {from}"));
                Message = "Wrong user name or password.";
                return Page();
        }
    }
}
