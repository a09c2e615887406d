// Apache ECharts, loaded only when a page shows a chart (1 MB: the first screen does not wait for it).
import { useEffect, useRef } from "preact/hooks";
import { html } from "./ui.js";
import { t } from "./i18n.js";

let loading = null;
export function loadEcharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  loading ||= new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src: "/vendor/echarts-6.1.0/echarts.min.js" });
    script.onload = () => resolve(window.echarts);
    script.onerror = () => reject(new Error("could not load /vendor/echarts-6.1.0/echarts.min.js"));
    document.head.append(script);
  });
  return loading;
}

// option: an ECharts option; onClick(params) gets the clicked item; table: [head, rows] for the text alternative
export function Chart({ id, title, option, onClick, table }) {
  const ref = useRef(null);
  const instance = useRef(null);
  const clickRef = useRef(onClick);
  clickRef.current = onClick;
  useEffect(() => {
    let live = true;
    loadEcharts().then((echarts) => {
      if (!live || !ref.current) return;
      instance.current = echarts.getInstanceByDom(ref.current) || echarts.init(ref.current);
      instance.current.on("click", (params) => clickRef.current && clickRef.current(params));
      instance.current.setOption(option, true);
    }).catch((err) => { if (ref.current) ref.current.textContent = err.message; });
    const resize = () => instance.current && instance.current.resize();
    window.addEventListener("resize", resize);
    return () => {
      live = false;
      window.removeEventListener("resize", resize);
      if (instance.current) instance.current.dispose();
      instance.current = null;
    };
  }, []);
  useEffect(() => {
    if (instance.current) instance.current.setOption(option, true);
  }, [JSON.stringify(option)]);
  return html`<figure class="card">
    <figcaption><h2 id=${`${id}-h`}>${title}</h2></figcaption>
    <div class="chart" id=${id} ref=${ref} role="img" aria-labelledby=${`${id}-h`}></div>
    ${table && html`<details><summary>${t("figures_table")}</summary><table><thead><tr>${table[0].map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
      <tbody>${table[1].map((row) => html`<tr>${row.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody></table></details>`}
  </figure>`;
}
