/** Entry point: resume the session the cookie holds, then render the app. */
import { render } from "preact";
import { App } from "./app";
import { resume } from "./session";
import "./styles.css";

void resume();
const root = document.getElementById("app");
if (root) render(<App />, root);
