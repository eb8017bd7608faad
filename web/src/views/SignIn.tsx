/** Sign in or create an account; the session then lives in the HttpOnly cookie (session.ts). */
import { useSignal } from "@preact/signals";
import { describeError } from "../messages";
import { signIn, signUp } from "../session";

export function SignIn() {
	const mode = useSignal<"signin" | "signup">("signin");
	const error = useSignal<string | null>(null);
	const busy = useSignal(false);
	const signingUp = mode.value === "signup";
	async function submit(event: SubmitEvent) {
		event.preventDefault();
		const form = new FormData(event.currentTarget as HTMLFormElement);
		const email = String(form.get("email") ?? "").trim();
		const password = String(form.get("password") ?? "");
		busy.value = true;
		error.value = null;
		try {
			await (signingUp ? signUp(email, password) : signIn(email, password));
		} catch (err) {
			error.value = describeError(err);
		} finally {
			busy.value = false;
		}
	}
	return (
		<main class="signin" id="main">
			<h1>Drive</h1>
			<form onSubmit={submit} aria-describedby={error.value ? "signin-error" : undefined}>
				<h2>{signingUp ? "Create your account" : "Sign in"}</h2>
				<label>
					Email
					<input name="email" type="email" autoComplete="email" required />
				</label>
				<label>
					Password
					<input
						name="password"
						type="password"
						autoComplete={signingUp ? "new-password" : "current-password"}
						minLength={signingUp ? 10 : undefined}
						required
					/>
				</label>
				{error.value && (
					<p id="signin-error" class="error" role="alert">
						{error.value}
					</p>
				)}
				<button type="submit" class="primary" disabled={busy.value}>
					{signingUp ? "Create account" : "Sign in"}
				</button>
				<button
					type="button"
					class="link"
					onClick={() => {
						mode.value = signingUp ? "signin" : "signup";
						error.value = null;
					}}
				>
					{signingUp ? "I already have an account" : "Create an account"}
				</button>
			</form>
		</main>
	);
}
