/**
 * The administration application's shell: who is signed in, the pages they may open and the
 * page the address names (`#/<page id>`). Someone whose permissions open no page sees which
 * permissions open which page, and nothing of any page.
 */
import * as React from 'react';

import type { HimaliaClient } from '../api';
import type { DescribeMe } from '../types';
import { IAdminPage, mayOpen } from './page';

export interface IAppProps {
  client: HimaliaClient;
  me: DescribeMe;
  /** The pages of the application, in the order of the navigation. */
  pages: IAdminPage[];
  /** Where the person came from: their lab, or the hub's home. */
  home: { url: string; label: string };
}

/** The page id in `#/<id>`, or '' for none. */
export function pageIdOf(hash: string): string {
  return decodeURIComponent(hash.replace(/^#\/?/, '').split('/')[0] ?? '');
}

function useHashPage(): string {
  const [id, setId] = React.useState(() => pageIdOf(window.location.hash));
  React.useEffect(() => {
    const follow = () => setId(pageIdOf(window.location.hash));
    window.addEventListener('hashchange', follow);
    return () => window.removeEventListener('hashchange', follow);
  }, []);
  return id;
}

function permissionList(page: IAdminPage): string {
  return [...page.permissions, 'admin']
    .filter((name, index, all) => all.indexOf(name) === index)
    .join(' or ');
}

export function App(props: IAppProps): React.ReactElement {
  const { client, me, pages, home } = props;
  const open = pages.filter(page => mayOpen(page, me));
  const asked = useHashPage();
  const current = asked
    ? open.find(page => page.id === asked)
    : (open[0] ?? undefined);
  const named = pages.find(page => page.id === asked);

  React.useEffect(() => {
    document.title = current
      ? `${current.title} · Himalia administration`
      : 'Himalia administration';
  }, [current]);

  let content: React.ReactElement;
  if (open.length === 0) {
    content = <NoPage pages={pages} />;
  } else if (current) {
    const Page = current.component;
    content = (
      <PageBoundary key={current.id} title={current.title}>
        <Page client={client} me={me} />
      </PageBoundary>
    );
  } else if (named) {
    content = (
      <p className="hml-admin-refusal" role="alert">
        The page {named.title} needs the permission {permissionList(named)},
        which you do not hold.
      </p>
    );
  } else {
    content = (
      <p className="hml-admin-refusal" role="alert">
        There is no page “{asked}” here; choose one on the left.
      </p>
    );
  }

  return (
    <div className="hml-admin" data-login={me.login}>
      <header className="hml-admin-header">
        <h1>Himalia administration</h1>
        <span className="hml-admin-person">
          Signed in as <b>{me.display_name || me.login}</b>
          {me.display_name && me.display_name !== me.login
            ? ` (${me.login})`
            : ''}
        </span>
        <a className="hml-admin-home" href={home.url}>
          {home.label}
        </a>
      </header>
      {open.length > 0 && (
        <nav className="hml-admin-nav" aria-label="Administration pages">
          <ul>
            {open.map(page => (
              <li key={page.id}>
                <a
                  href={`#/${page.id}`}
                  aria-current={page === current ? 'page' : undefined}
                >
                  {page.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      )}
      <main
        className="hml-admin-main"
        data-page={current?.id ?? (open.length === 0 ? 'none' : '')}
      >
        {content}
      </main>
    </div>
  );
}

/** The screen of someone whose global permissions open no page. */
export function NoPage(props: { pages: IAdminPage[] }): React.ReactElement {
  return (
    <section className="hml-admin-nopage" aria-label="No page">
      <h2>You may open no page of the administration</h2>
      <p>
        Each page needs a global permission, which an administrator gives to one
        of your groups:
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Page</th>
            <th scope="col">Opened by</th>
          </tr>
        </thead>
        <tbody>
          {props.pages.map(page => (
            <tr key={page.id}>
              <td>{page.title}</td>
              <td>{permissionList(page)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        Your projects, scenarios and data stay in JupyterLab, in the Himalia
        sidebar.
      </p>
    </section>
  );
}

/** One page's failure is said in its place; the navigation stays usable. */
class PageBoundary extends React.Component<
  { title: string; children: React.ReactNode },
  { error: Error | null }
> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error): { error: Error } {
    return { error };
  }

  render(): React.ReactNode {
    if (this.state.error) {
      return (
        <p className="hml-admin-refusal" role="alert">
          The page {this.props.title} failed: {this.state.error.message}
        </p>
      );
    }
    return this.props.children;
  }
}
